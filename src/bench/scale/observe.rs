//! Watching the nodes of a lab from inside their namespaces: their kernels' neighbour
//! and FDB changes as netlink announces them, their resolvers by real queries, and
//! their agents' memory and CPU from /proc.
//!
//! ```text
//!  host ns n1..nN ── netlink socket (RTMGRP_NEIGH) ── thread ──▶ Seen: first time each
//!                                                               (node, key, added) shows
//!  host ns, sandbox ns ── netlink socket (NFNLGRP_NFTABLES) ── thread ──▶ Backends: a
//!                     map (published port, VIP) as each transaction left it, and when
//!  host ns ── UDP socket ──▶ gateway:53 (the node's resolver): A records of a name
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use netlink_sys::{Socket, SocketAddr as NlAddr};
use shoal_dataplane::nft::events::{events, Event, NFNLGRP_NFTABLES};
use shoal_dataplane::nft::Family;

const RTMGRP_NEIGH: u32 = 4;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const AF_INET: u8 = 2;
const AF_BRIDGE: u8 = 7;

/// What a neighbour message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A proxy-ARP entry for this address.
    Ip(Ipv4Addr),
    /// An FDB entry for this MAC.
    Mac([u8; 6]),
}

/// One neighbour change: what, and whether it was added (else deleted).
pub type Change = (Key, bool);

/// Reads the neighbour changes out of one netlink datagram.
pub fn parse(mut buf: &[u8]) -> Vec<Change> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if len < 16 || len > buf.len() {
            break;
        }
        let msg = &buf[16..len];
        if matches!(kind, RTM_NEWNEIGH | RTM_DELNEIGH) && msg.len() >= 12 {
            let family = msg[0];
            let (mut dst, mut lladdr) = (None, None);
            let mut attrs = &msg[12..];
            while attrs.len() >= 4 {
                let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let akind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                let payload = &attrs[4..alen];
                match (akind, payload.len()) {
                    (NDA_DST, 4) => {
                        dst = Some(Ipv4Addr::new(
                            payload[0], payload[1], payload[2], payload[3],
                        ))
                    }
                    (NDA_LLADDR, 6) => lladdr = payload.try_into().ok(),
                    _ => {}
                }
                attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
            }
            let added = kind == RTM_NEWNEIGH;
            match (family, dst, lladdr) {
                (AF_INET, Some(ip), _) => out.push((Key::Ip(ip), added)),
                (AF_BRIDGE, _, Some(mac)) => out.push((Key::Mac(mac), added)),
                _ => {}
            }
        }
        buf = &buf[((len + 3) & !3).min(buf.len())..];
    }
    out
}

/// When each node first announced each change.
#[derive(Default)]
pub struct Seen {
    at: Mutex<HashMap<(usize, Change), Instant>>,
}

impl Seen {
    fn record(&self, node: usize, change: Change, now: Instant) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.entry((node, change)).or_insert(now);
    }

    /// When node `node` first showed `change`.
    pub fn when(&self, node: usize, change: Change) -> Option<Instant> {
        let at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.get(&(node, change)).copied()
    }

    /// Forgets everything seen (between measurements, so a key can be measured again).
    pub fn clear(&self) {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// What the published map of one node has held: its elements now (key → task), and
/// each committed content with when its transaction ended.
#[derive(Default)]
struct MapTrack {
    now: BTreeMap<Vec<u8>, Ipv4Addr>,
    committed: Vec<(Instant, BTreeSet<Ipv4Addr>)>,
}

/// The tasks of one published port as each node's kernel holds them: the map its
/// routing mesh draws a task from (`ip` table `table`, map `set`), followed through the
/// kernel's nf_tables announcements. A port with more than one task has such a map.
pub struct Backends {
    table: String,
    set: String,
    nodes: Mutex<Vec<MapTrack>>,
}

impl Backends {
    fn new(table: &str, set: &str, nodes: usize) -> Backends {
        Backends {
            table: table.into(),
            set: set.into(),
            nodes: Mutex::new((0..nodes).map(|_| MapTrack::default()).collect()),
        }
    }

    fn apply(&self, node: usize, events: Vec<Event>, at: Instant) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let Some(track) = nodes.get_mut(node) else {
            return;
        };
        for event in events {
            match event {
                Event::Generation => {
                    let content: BTreeSet<Ipv4Addr> = track.now.values().copied().collect();
                    if track.committed.last().is_none_or(|(_, c)| *c != content) {
                        track.committed.push((at, content));
                    }
                }
                Event::TableGone { family, table }
                    if family == Family::Ip && table == self.table =>
                {
                    track.now.clear()
                }
                Event::SetGone { family, table, set }
                    if family == Family::Ip && table == self.table && set == self.set =>
                {
                    track.now.clear()
                }
                Event::Elements {
                    family,
                    table,
                    set,
                    added,
                    elements,
                } if family == Family::Ip && table == self.table && set == self.set => {
                    for (key, value) in elements {
                        match (
                            added,
                            <[u8; 4]>::try_from(value.get(..4).unwrap_or_default()),
                        ) {
                            (true, Ok(ip)) => {
                                track.now.insert(key, Ipv4Addr::from(ip));
                            }
                            _ => {
                                track.now.remove(&key);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Since when node `node`'s map has held exactly `want`, counting from `since`: the
    /// first commit after `since` that made it so, or `since` itself when it already
    /// held it then (an agent started again finds its table right and commits nothing).
    pub fn when(&self, node: usize, want: &BTreeSet<Ipv4Addr>, since: Instant) -> Option<Instant> {
        let nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let committed = &nodes.get(node)?.committed;
        // The content in force at `since`, and every later one.
        let from = committed
            .iter()
            .rposition(|(at, _)| *at < since)
            .unwrap_or(0);
        committed[from..]
            .iter()
            .find(|(_, content)| content == want)
            .map(|(at, _)| (*at).max(since))
    }

    /// Forgets all but what each node holds now.
    pub fn clear(&self) {
        for track in self
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            let last = track.committed.pop();
            track.committed.clear();
            track.committed.extend(last);
        }
    }
}

/// Netlink listeners in the namespaces of a lab's nodes, until dropped.
pub struct Listeners {
    /// Neighbour and FDB changes they saw.
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A socket of `protocol` bound to the multicast `groups` (a mask), with a short read
/// timeout (so its thread sees the stop flag) and a large buffer.
fn subscribe(protocol: isize, groups: u32) -> io::Result<Socket> {
    let mut s = Socket::new(protocol)?;
    s.bind(&NlAddr::new(0, groups))?;
    let fd = s.as_raw_fd();
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    let big: libc::c_int = 8 << 20;
    // SAFETY: plain setsockopt calls with option values of the right size on an open fd.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&big as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    Ok(s)
}

impl Listeners {
    /// Starts the neighbour and FDB listeners, node `i` being `namespaces[i]`.
    pub fn start(namespaces: &[File]) -> io::Result<Listeners> {
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (node, ns) in namespaces.iter().enumerate() {
            let seen = seen.clone();
            threads.push(listen(
                ns,
                NETLINK_ROUTE,
                RTMGRP_NEIGH,
                &stop,
                move |buf, now| {
                    for change in parse(buf) {
                        seen.record(node, change, now);
                    }
                },
            )?);
        }
        Ok(Listeners {
            seen,
            stop,
            threads,
        })
    }

    /// Follows map `set` of the `ip` table `table` in `namespaces` (node `i`'s being
    /// `namespaces[i]`) from now on.
    pub fn follow(
        &mut self,
        namespaces: &[File],
        table: &str,
        set: &str,
    ) -> io::Result<Arc<Backends>> {
        let backends = Arc::new(Backends::new(table, set, namespaces.len()));
        for (node, ns) in namespaces.iter().enumerate() {
            let backends = backends.clone();
            let groups = 1 << (NFNLGRP_NFTABLES - 1);
            self.threads.push(listen(
                ns,
                NETLINK_NETFILTER,
                groups,
                &self.stop,
                move |buf, now| backends.apply(node, events(buf), now),
            )?);
        }
        Ok(backends)
    }
}

/// A thread reading what `groups` of `protocol` announce in namespace `ns`, handing
/// each datagram and when it came to `on`, until `stop`.
fn listen(
    ns: &File,
    protocol: isize,
    groups: u32,
    stop: &Arc<AtomicBool>,
    on: impl Fn(&[u8], Instant) + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>> {
    // The socket belongs to the namespace it was made in.
    let socket = shoal_dataplane::netns::run_in(ns, move || subscribe(protocol, groups))??;
    let stop = stop.clone();
    Ok(std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while !stop.load(Ordering::Relaxed) {
            // Timeouts and overruns (ENOBUFS while thousands change at once) only cost
            // the changes of that moment, which are not measured; a published map is
            // whole again at the next replacement of its table.
            let Ok(n) = socket.recv(&mut &mut buf[..], 0) else {
                continue;
            };
            on(&buf[..n], Instant::now());
        }
    }))
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The A records in a DNS reply to query `id`, if it is one.
pub fn a_records(reply: &[u8], id: u16) -> Option<Vec<Ipv4Addr>> {
    if reply.len() < 12 || reply[..2] != id.to_be_bytes() || reply[2] & 0x80 == 0 {
        return None;
    }
    let questions = u16::from_be_bytes([reply[4], reply[5]]);
    let answers = u16::from_be_bytes([reply[6], reply[7]]);
    let mut at = 12;
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let len = *reply.get(at)? as usize;
            if len == 0 {
                return Some(at + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Some(at + 2);
            }
            at += 1 + len;
        }
    };
    for _ in 0..questions {
        at = skip_name(at)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..answers {
        at = skip_name(at)?;
        let head = reply.get(at..at + 10)?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let rdlen = u16::from_be_bytes([head[8], head[9]]) as usize;
        let data = reply.get(at + 10..at + 10 + rdlen)?;
        if kind == 1 && rdlen == 4 {
            out.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + rdlen;
    }
    Some(out)
}

/// A resolver client inside one node's namespace.
pub struct Probe {
    socket: UdpSocket,
    server: SocketAddr,
    id: u16,
}

impl Probe {
    /// A client of `server` from inside `ns` (which may have no route to it yet).
    pub fn new(ns: &File, server: SocketAddr) -> io::Result<Probe> {
        let socket = shoal_dataplane::netns::run_in(ns, move || -> io::Result<UdpSocket> {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok(s)
        })??;
        Ok(Probe {
            socket,
            server,
            id: 0,
        })
    }

    /// Sends a query for `name`'s A records; false if it could not be sent (no route
    /// yet).
    pub fn ask(&mut self, name: &str) -> bool {
        self.id = self.id.wrapping_add(1);
        self.socket
            .send_to(&shoal_bench::dns::query(self.id, name), self.server)
            .is_ok()
    }

    /// The answer to the last query: its A records (empty for a name it does not know),
    /// or `None` when no answer came in time.
    pub fn answer(&mut self) -> Option<Vec<Ipv4Addr>> {
        let mut buf = [0u8; 1500];
        loop {
            let n = self.socket.recv(&mut buf).ok()?;
            // A late answer to an earlier query is skipped.
            if let Some(ips) = a_records(&buf[..n], self.id) {
                return Some(ips);
            }
        }
    }
}

/// What /proc says a process uses.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Resident memory (VmRSS), KiB: includes the binary's pages, shared by every agent.
    pub rss_kib: u64,
    /// Its private part (RssAnon), KiB.
    pub anon_kib: u64,
    /// CPU time so far (utime + stime), clock ticks.
    pub ticks: u64,
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A process's memory and CPU time so far, from /proc.
pub fn usage(pid: i32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status_kib(&status, "VmRSS:")?;
    let anon_kib = status_kib(&status, "RssAnon:")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `)`.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Usage {
        rss_kib,
        anon_kib,
        ticks,
    })
}

/// Clock ticks per second.
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlmsg(kind: u16, family: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = vec![family, 0, 0, 0];
        body.extend(7i32.to_ne_bytes());
        body.extend([0u8; 4]);
        for (k, p) in attrs {
            let len = 4 + p.len();
            body.extend((len as u16).to_ne_bytes());
            body.extend(k.to_ne_bytes());
            body.extend(*p);
            body.resize((body.len() + 3) & !3, 0);
        }
        let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m
    }

    #[test]
    fn neighbour_and_fdb_messages_are_read() {
        let mac = [2, 0x42, 10, 0, 0, 9];
        let mut buf = nlmsg(
            RTM_NEWNEIGH,
            AF_INET,
            &[(NDA_DST, &[10, 0, 0, 9]), (NDA_LLADDR, &mac)],
        );
        buf.extend(nlmsg(
            RTM_DELNEIGH,
            AF_BRIDGE,
            &[(NDA_LLADDR, &mac), (NDA_DST, &[198, 18, 0, 2])],
        ));
        buf.extend(nlmsg(16, AF_INET, &[]));
        assert_eq!(
            parse(&buf),
            vec![
                (Key::Ip(Ipv4Addr::new(10, 0, 0, 9)), true),
                (Key::Mac(mac), false)
            ]
        );
        assert!(parse(&buf[..10]).is_empty());
    }

    #[test]
    fn a_records_are_read_from_replies() {
        let q = shoal_bench::dns::query(5, "web.net");
        let mut r = q.clone();
        r[2] |= 0x80;
        r[7] = 2;
        for ip in [[10, 0, 0, 2], [10, 0, 0, 3]] {
            r.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4]);
            r.extend(ip);
        }
        assert_eq!(
            a_records(&r, 5),
            Some(vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)])
        );
        assert_eq!(a_records(&r, 6), None);
        assert_eq!(a_records(&q, 5), None, "a query is no reply");
        assert_eq!(a_records(&r[..r.len() - 2], 5), None);
    }

    #[test]
    fn a_published_map_is_followed_commit_by_commit() {
        let b = Backends::new("shoal", "pub-6-80", 2);
        let el = |table: &str, added, ips: &[(u8, u8)]| Event::Elements {
            family: Family::Ip,
            table: table.into(),
            set: "pub-6-80".into(),
            added,
            elements: ips
                .iter()
                .map(|(k, last)| (vec![*k], vec![10, 0, 0, *last, 0, 80, 0, 0]))
                .collect(),
        };
        let ips = |last: &[u8]| -> BTreeSet<Ipv4Addr> {
            last.iter().map(|l| Ipv4Addr::new(10, 0, 0, *l)).collect()
        };
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(10);
        let t2 = t0 + Duration::from_millis(20);
        b.apply(0, vec![el("shoal", true, &[(0, 2), (1, 3)])], t0);
        assert_eq!(b.when(0, &ips(&[2, 3]), t0), None, "not committed yet");
        b.apply(0, vec![Event::Generation], t0);
        assert_eq!(b.when(0, &ips(&[2, 3]), t0), Some(t0));
        // The table replaced: the map is what the transaction wrote, not more. Another
        // table's map of the same name and another node change nothing here.
        let gone = Event::TableGone {
            family: Family::Ip,
            table: "shoal".into(),
        };
        let other = el("other", true, &[(5, 9)]);
        b.apply(0, vec![gone, el("shoal", true, &[(0, 2)]), other], t1);
        b.apply(1, vec![el("shoal", true, &[(0, 7)]), Event::Generation], t1);
        b.apply(0, vec![Event::Generation], t2);
        assert_eq!(b.when(0, &ips(&[2]), t0), Some(t2));
        assert_eq!(b.when(0, &ips(&[2, 3]), t1), Some(t1), "held at t1 already");
        let later = t2 + Duration::from_millis(1);
        assert_eq!(b.when(0, &ips(&[2, 3]), later), None, "not since t2");
        assert_eq!(b.when(1, &ips(&[7]), t0), Some(t1));
        b.apply(
            0,
            vec![el("shoal", false, &[(0, 2)]), Event::Generation],
            t2,
        );
        assert_eq!(b.when(0, &ips(&[]), t0), Some(t2));
        b.clear();
        assert_eq!(b.when(0, &ips(&[2]), t0), None, "forgotten");
        assert_eq!(
            b.when(0, &ips(&[]), t0),
            Some(t2),
            "what it holds now stays"
        );
    }

    #[test]
    fn this_process_has_usage() {
        let u = usage(std::process::id() as i32).expect("own /proc entry");
        assert!(u.rss_kib >= u.anon_kib && u.anon_kib > 0);
    }
}
