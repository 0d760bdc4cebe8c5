//! Pre-vote: a follower that stopped hearing from the leader first asks the other voters
//! whether they stopped hearing from it too, and only then starts a real election.
//!
//! openraft 0.9 has no pre-vote, so its own election timer is off (`enable_elect =
//! false`) and [`Supervisor`](crate::member) drives elections through
//! `raft.trigger().elect()` after a granted pre-vote round. A voter grants when it is not
//! the leader, has not heard from a leader for [`LEASE`], and the candidate's log is at
//! least as up to date as its own. A node that was partitioned away therefore cannot
//! bump the term of a healthy cluster when it returns.

use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::LogId;

/// How long after the last word from a leader a voter still believes in it.
/// Matches openraft's leader lease (`election_timeout_max`).
pub const LEASE: Duration = Duration::from_millis(1500);

/// A randomised election timeout: after this long without a leader, run a pre-vote.
pub fn election_timeout() -> Duration {
    election_timeout_with(&mut rand::thread_rng())
}

/// [`election_timeout`] drawn from `rng` (seeded in the simulation).
pub fn election_timeout_with(rng: &mut impl Rng) -> Duration {
    Duration::from_millis(rng.gen_range(1600..2600))
}

/// Asks a voter whether it would vote for the sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    /// The would-be candidate.
    pub candidate: u64,
    /// The candidate's last log entry.
    pub last_log_id: Option<LogId>,
}

/// A voter's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteResponse {
    /// Whether it would vote.
    pub granted: bool,
    /// Why not, when it would not.
    pub reason: String,
}

/// When this node last heard from a leader (or was one).
#[derive(Debug)]
pub struct LeaderContact(Mutex<Instant>);

impl Default for LeaderContact {
    fn default() -> Self {
        LeaderContact(Mutex::new(Instant::now()))
    }
}

impl LeaderContact {
    /// Records word from the leader now.
    pub fn touch(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// How long since the leader was last heard.
    pub fn elapsed(&self) -> Duration {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// The voter's decision, given its own situation.
pub fn decide(
    i_am_leader: bool,
    since_leader: Duration,
    my_last_log: Option<LogId>,
    req: &PreVoteRequest,
) -> PreVoteResponse {
    let refuse = |reason: String| PreVoteResponse {
        granted: false,
        reason,
    };
    if i_am_leader {
        return refuse("I am the leader".into());
    }
    if since_leader < LEASE {
        return refuse(format!(
            "heard from the leader {}ms ago",
            since_leader.as_millis()
        ));
    }
    if req.last_log_id < my_last_log {
        return refuse(format!(
            "candidate log {:?} is behind mine {:?}",
            req.last_log_id, my_last_log
        ));
    }
    PreVoteResponse {
        granted: true,
        reason: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

    fn log(term: u64, index: u64) -> Option<super::LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 0), index))
    }

    fn req(last: Option<super::LogId>) -> PreVoteRequest {
        PreVoteRequest {
            candidate: 7,
            last_log_id: last,
        }
    }

    #[test]
    fn leader_never_grants() {
        assert!(!decide(true, Duration::from_secs(10), None, &req(log(1, 1))).granted);
    }

    #[test]
    fn recent_leader_contact_refuses() {
        let r = decide(false, Duration::from_millis(200), None, &req(log(1, 1)));
        assert!(!r.granted);
        assert!(r.reason.contains("heard from the leader"));
    }

    #[test]
    fn stale_candidate_log_refuses_and_up_to_date_grants() {
        let quiet = LEASE + Duration::from_millis(1);
        assert!(!decide(false, quiet, log(2, 5), &req(log(2, 4))).granted);
        assert!(!decide(false, quiet, log(3, 1), &req(log(2, 9))).granted);
        assert!(decide(false, quiet, log(2, 5), &req(log(2, 5))).granted);
        assert!(decide(false, quiet, log(2, 5), &req(log(3, 1))).granted);
    }

    #[test]
    fn election_timeouts_are_in_seconds() {
        for _ in 0..100 {
            let t = election_timeout();
            assert!(t >= Duration::from_millis(1600) && t < Duration::from_millis(2600));
        }
    }
}
