//! Counters for the agent's metrics: plain atomics, bumped on the serving path,
//! read as a [`Stats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::answer::Outcome;

/// Number of rcode buckets: NOERROR..REFUSED by value, then BADVERS, then other.
const RCODE_BUCKETS: usize = 8;
const BADVERS_BUCKET: usize = 6;
const OTHER_BUCKET: usize = 7;

/// What one resolver (all its listeners) has done since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Datagrams and TCP messages received.
    pub queries: u64,
    /// Replies sent (ours and relayed ones) with rcode NOERROR (answers and NODATA).
    pub noerror: u64,
    /// … with FORMERR.
    pub formerr: u64,
    /// … with SERVFAIL (ours when no upstream answered, or relayed).
    pub servfail: u64,
    /// … with NXDOMAIN (only ever relayed: we forward names we do not know).
    pub nxdomain: u64,
    /// … with NOTIMP.
    pub notimp: u64,
    /// … with REFUSED (relayed).
    pub refused: u64,
    /// … with BADVERS.
    pub badvers: u64,
    /// … with any other rcode (relayed).
    pub other_rcode: u64,
    /// Replies of ours with records left out and TC set.
    pub truncated: u64,
    /// Queries sent on to an upstream.
    pub forwarded: u64,
    /// Forwarded queries no upstream answered (each also counted as SERVFAIL).
    pub forward_failures: u64,
    /// Queries given no reply: unreadable, responses, or over the forwarding backlog.
    pub dropped: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    queries: AtomicU64,
    rcodes: [AtomicU64; RCODE_BUCKETS],
    truncated: AtomicU64,
    forwarded: AtomicU64,
    forward_failures: AtomicU64,
    dropped: AtomicU64,
}

impl Counters {
    /// Counts one received query and what was decided for it.
    pub(crate) fn decided(&self, outcome: &Outcome) {
        self.queries.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Reply(reply) => {
                self.rcode(u16::from(reply.rcode));
                if reply.truncated {
                    self.truncated.fetch_add(1, Relaxed);
                }
            }
            // Counted by `forwarded` once it is actually sent on.
            Outcome::Forward(_) => {}
            Outcome::Drop(_) => self.dropped(),
        }
    }

    /// Counts a reply sent with `rcode` (the full 12-bit value).
    pub(crate) fn rcode(&self, rcode: u16) {
        let bucket = match rcode {
            0..=5 => usize::from(rcode),
            16 => BADVERS_BUCKET,
            _ => OTHER_BUCKET,
        };
        self.rcodes[bucket].fetch_add(1, Relaxed);
    }

    /// Counts a relayed upstream reply by the rcode in its header.
    pub(crate) fn relayed(&self, reply: &[u8]) {
        self.rcode(reply.get(3).map_or(0, |b| u16::from(b & 0x0F)));
    }

    /// Counts a forwarded query that no upstream answered (we answer SERVFAIL).
    pub(crate) fn forward_failed(&self) {
        self.forward_failures.fetch_add(1, Relaxed);
        self.rcode(2);
    }

    /// Counts a query given no reply after all (e.g. forwarding backlog full).
    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Relaxed);
    }

    /// Counts a query sent on to the upstreams.
    pub(crate) fn forwarded(&self) {
        self.forwarded.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let r = |i: usize| self.rcodes[i].load(Relaxed);
        Stats {
            queries: self.queries.load(Relaxed),
            noerror: r(0),
            formerr: r(1),
            servfail: r(2),
            nxdomain: r(3),
            notimp: r(4),
            refused: r(5),
            badvers: r(BADVERS_BUCKET),
            other_rcode: r(OTHER_BUCKET),
            truncated: self.truncated.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            forward_failures: self.forward_failures.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::ResponseCode;

    use super::*;
    use crate::answer::Reply;
    use crate::DropReason;

    #[test]
    fn outcomes_land_in_their_counters() {
        let c = Counters::default();
        let reply = |rcode, truncated| Outcome::Reply(Reply { rcode, truncated });
        c.decided(&reply(ResponseCode::NoError, true));
        c.decided(&reply(ResponseCode::FormErr, false));
        c.decided(&reply(ResponseCode::BADVERS, false));
        c.decided(&Outcome::Drop(DropReason::Unreadable));
        c.relayed(&[0, 0, 0x80, 0x03]);
        c.relayed(&[0, 0, 0x80, 0x09]);
        c.forward_failed();
        let s = c.snapshot();
        assert_eq!(s.queries, 4);
        assert_eq!((s.noerror, s.formerr, s.badvers, s.truncated), (1, 1, 1, 1));
        assert_eq!((s.nxdomain, s.other_rcode, s.servfail), (1, 1, 1));
        assert_eq!((s.dropped, s.forward_failures), (1, 1));
    }
}
