//! The proxy's client connections as a whole: how many each client address holds (a cap
//! keeps one address from taking every descriptor), which are idle, and shedding the
//! longest-idle ones when accept runs out of descriptors.
//!
//! ```text
//!  accept ─▶ Conns::register(client IP) ── over the per-client cap ─▶ closed at once
//!              │ Registration (dropped with the connection: unregistered)
//!              └─ Activity: requests in flight; idle since; shed?
//!  hyper connection ─▶ idle (no request in flight) for the header timeout, or shed ─▶ closed
//!  accept: EMFILE/ENFILE ─▶ shed the oldest idle connections ─▶ accept again
//! ```
//! An HTTP/2 connection that sent only its preface, or stopped inside a header block,
//! has no request in flight: it is closed like an idle HTTP/1 connection. One that stops
//! inside a body has a request in flight whose body idle timeout ends it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::lock;

/// Every live client connection of a proxy.
#[derive(Debug)]
pub(super) struct Conns {
    /// Most connections one client address may hold (0: no cap).
    per_client: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_client: HashMap<IpAddr, usize>,
    live: HashMap<u64, Arc<Activity>>,
    next: u64,
}

/// One connection's state, shared with the task serving it.
#[derive(Debug)]
pub(super) struct Activity {
    /// Requests in flight (until their response body ends).
    active: AtomicUsize,
    /// When the connection last became idle, in ms since the proxy's epoch.
    idle_since_ms: AtomicU64,
    /// Told when `active` falls to 0 or the connection is shed.
    changed: Notify,
    /// The connection should close now (descriptors are short).
    shed: AtomicBool,
    epoch: Instant,
}

/// A connection's place in [`Conns`]; unregisters it when dropped.
#[derive(Debug)]
pub(super) struct Registration {
    conns: Arc<Conns>,
    id: u64,
    client: IpAddr,
    /// The connection's activity.
    pub(super) activity: Arc<Activity>,
}

impl Conns {
    /// No connections yet; at most `per_client` per client address (0: no cap).
    pub(super) fn new(per_client: usize) -> Conns {
        Conns {
            per_client,
            epoch: Instant::now(),
            inner: Mutex::default(),
        }
    }

    /// Takes a connection from `client`, or `None` when that address holds its cap
    /// (if `capped`).
    pub(super) fn register(self: &Arc<Self>, client: IpAddr, capped: bool) -> Option<Registration> {
        let mut inner = lock(&self.inner);
        let held = inner.by_client.entry(client).or_insert(0);
        if capped && self.per_client > 0 && *held >= self.per_client {
            return None;
        }
        *held += 1;
        let id = inner.next;
        inner.next += 1;
        let activity = Arc::new(Activity {
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(ms_since(self.epoch)),
            changed: Notify::new(),
            shed: AtomicBool::new(false),
            epoch: self.epoch,
        });
        inner.live.insert(id, activity.clone());
        Some(Registration {
            conns: self.clone(),
            id,
            client,
            activity,
        })
    }

    /// Asks the `n` connections idle the longest to close; returns how many were asked.
    pub(super) fn shed_idle(&self, n: usize) -> usize {
        let inner = lock(&self.inner);
        let mut idle: Vec<&Arc<Activity>> = inner
            .live
            .values()
            .filter(|a| a.active.load(Ordering::Relaxed) == 0 && !a.shed.load(Ordering::Relaxed))
            .collect();
        idle.sort_by_key(|a| a.idle_since_ms.load(Ordering::Relaxed));
        for a in idle.iter().take(n) {
            a.shed.store(true, Ordering::Relaxed);
            a.changed.notify_one();
        }
        idle.len().min(n)
    }

    /// How many connections are open.
    pub(super) fn len(&self) -> usize {
        lock(&self.inner).live.len()
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = lock(&self.conns.inner);
        inner.live.remove(&self.id);
        if let Some(held) = inner.by_client.get_mut(&self.client) {
            *held -= 1;
            if *held == 0 {
                inner.by_client.remove(&self.client);
            }
        }
    }
}

impl Activity {
    /// A request began.
    pub(super) fn begin(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// A request (and its response body) ended.
    pub(super) fn end(&self) {
        if self.active.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.idle_since_ms
                .store(ms_since(self.epoch), Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// Resolves when the connection is shed (or, where requests are counted, when the
    /// last one ends); a notice given before the first poll is kept.
    pub(super) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Whether the connection was asked to close.
    pub(super) fn is_shed(&self) -> bool {
        self.shed.load(Ordering::Relaxed)
    }

    /// Resolves once the connection has had no request in flight for `timeout`, or was
    /// shed.
    pub(super) async fn idle_for(&self, timeout: Duration) {
        loop {
            let changed = self.changed.notified();
            if self.is_shed() {
                return;
            }
            if self.active.load(Ordering::Relaxed) > 0 {
                changed.await;
                continue;
            }
            let since = self.idle_since_ms.load(Ordering::Relaxed);
            let at = self.epoch + Duration::from_millis(since) + timeout;
            tokio::select! {
                () = tokio::time::sleep_until(at) => {
                    let still = self.active.load(Ordering::Relaxed) == 0
                        && self.idle_since_ms.load(Ordering::Relaxed) == since;
                    if still {
                        return;
                    }
                }
                () = changed => {}
            }
        }
    }
}

/// Ends a request's part in its connection's [`Activity`] when dropped.
pub(super) struct InFlight(pub(super) Arc<Activity>);

impl InFlight {
    /// A request began on `activity`'s connection.
    pub(super) fn new(activity: Arc<Activity>) -> InFlight {
        activity.begin();
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

fn ms_since(epoch: Instant) -> u64 {
    Instant::now().saturating_duration_since(epoch).as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn the_per_client_cap_counts_live_connections_only() {
        let conns = Arc::new(Conns::new(2));
        let a = conns.register(ip(1), true).unwrap();
        let _b = conns.register(ip(1), true).unwrap();
        assert!(
            conns.register(ip(1), true).is_none(),
            "third from one address"
        );
        let _c = conns
            .register(ip(2), true)
            .expect("other addresses are not affected");
        drop(a);
        assert!(
            conns.register(ip(1), true).is_some(),
            "a closed one frees its place"
        );
        let unlimited = Arc::new(Conns::new(0));
        let held: Vec<_> = (0..100)
            .map(|_| unlimited.register(ip(1), true).unwrap())
            .collect();
        assert_eq!(unlimited.len(), held.len());
        assert!(
            conns.register(ip(1), false).is_some(),
            "uncapped peers pass"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_longest_idle_are_shed_first_and_busy_ones_never() {
        let conns = Arc::new(Conns::new(0));
        let old = conns.register(ip(1), true).unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = conns.register(ip(1), true).unwrap();
        let busy = conns.register(ip(1), true).unwrap();
        let _request = InFlight::new(busy.activity.clone());
        assert_eq!(conns.shed_idle(1), 1);
        assert!(old.activity.is_shed());
        assert!(!newer.activity.is_shed());
        assert_eq!(conns.shed_idle(10), 1, "only the idle one is left to shed");
        assert!(newer.activity.is_shed());
        assert!(!busy.activity.is_shed());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_out_requests_in_flight() {
        let conns = Arc::new(Conns::new(0));
        let reg = conns.register(ip(1), true).unwrap();
        let activity = reg.activity.clone();
        let request = InFlight::new(activity.clone());
        let started = Instant::now();
        let waiter = tokio::spawn(async move {
            activity.idle_for(Duration::from_secs(10)).await;
            Instant::now()
        });
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(!waiter.is_finished(), "a request in flight keeps it open");
        drop(request);
        let done = waiter.await.unwrap();
        let idle = done.saturating_duration_since(started);
        assert!(idle >= Duration::from_secs(40), "{idle:?}");
    }
}
