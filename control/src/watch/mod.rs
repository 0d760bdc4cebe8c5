//! The change feed every node follows, and the node's own copy of the cluster state.
//!
//! ```text
//!  manager: state machine ──publish(state, rev, redacted proposal)──▶ Replica ──▶ local readers
//!                                                                      └──▶ /v1/watch (remote nodes)
//!  worker:  /v1/watch on a manager ──▶ follower applies entries ──▶ Replica ──▶ local readers
//! ```
//! A subscriber says the last revision it has; it gets the entries after it from a
//! bounded backlog, or a snapshot of the whole state when the backlog no longer reaches
//! back that far, and then live events. Readers never block writers: the current state
//! is an `ArcSwap`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

use crate::state::{apply, ClusterState, Proposal};

/// How many recent entries a replica keeps for resuming subscribers.
const BACKLOG: usize = 4096;

/// One message of the watch stream.
///
/// Events are built to be sent and dropped; a snapshot (the whole state) is the large
/// one and the rare one, so boxing it would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WatchEvent {
    /// The whole public state; replaces what the subscriber had.
    Snapshot {
        /// The state (its `revision` says where it stands).
        state: ClusterState,
    },
    /// One applied change.
    Entry {
        /// The revision after applying it.
        revision: u64,
        /// The change, secrets removed.
        proposal: Proposal,
    },
    /// Keep-alive, with the sender's current revision.
    Ping {
        /// The sender's revision.
        revision: u64,
    },
}

/// An event on its way to remote watchers, encoded once for all of them: a manager
/// fans every change out to every node's watch, so encoding it per watcher would cost
/// the leader O(nodes) encodings per change.
#[derive(Debug)]
pub struct Outgoing {
    /// The event.
    pub event: WatchEvent,
    line: OnceLock<Option<Bytes>>,
}

impl Outgoing {
    /// `event`, not encoded yet.
    pub fn new(event: WatchEvent) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            event,
            line: OnceLock::new(),
        })
    }

    /// The event as one line of NDJSON, encoded by the first watcher that asks.
    pub fn line(&self) -> Option<&Bytes> {
        self.line
            .get_or_init(|| {
                let mut line = serde_json::to_vec(&self.event).ok()?;
                line.push(b'\n');
                Some(Bytes::from(line))
            })
            .as_ref()
    }
}

/// What this node has sent its remote watchers (a manager's `/v1/watch`).
#[derive(Debug, Default)]
pub struct Sent {
    watchers: AtomicU64,
    events: AtomicU64,
    snapshots: AtomicU64,
    bytes: AtomicU64,
}

impl Sent {
    /// A watcher connected; it is counted until the returned guard drops.
    pub fn watcher(self: &Arc<Self>) -> WatcherGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(self.clone())
    }

    /// Counts one event sent as `bytes` bytes.
    pub fn sent(&self, event: &WatchEvent, bytes: usize) {
        self.events.fetch_add(1, Ordering::Relaxed);
        if matches!(event, WatchEvent::Snapshot { .. }) {
            self.snapshots.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The counters as `shoal status` shows them.
    pub fn info(&self) -> crate::api::WatchInfo {
        crate::api::WatchInfo {
            watchers: self.watchers.load(Ordering::Relaxed),
            events_sent: self.events.load(Ordering::Relaxed),
            snapshots_sent: self.snapshots.load(Ordering::Relaxed),
            bytes_sent: self.bytes.load(Ordering::Relaxed),
        }
    }
}

/// Counts a connected watcher while it lives.
pub struct WatcherGuard(Arc<Sent>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a new subscriber gets: the catch-up events, then the live channel.
pub struct Subscription {
    /// Events to deliver first, in order.
    pub backlog: Vec<Arc<Outgoing>>,
    /// Live events from here on.
    pub live: broadcast::Receiver<Arc<Outgoing>>,
}

/// This node's copy of the cluster state and its recent history.
pub struct Replica {
    state: ArcSwap<ClusterState>,
    recent: Mutex<VecDeque<(u64, Proposal)>>,
    events: broadcast::Sender<Arc<Outgoing>>,
    revision: watch::Sender<u64>,
    /// What remote watchers were sent.
    pub sent: Arc<Sent>,
}

impl Replica {
    /// A replica starting from `initial`.
    pub fn new(initial: ClusterState) -> Arc<Replica> {
        let (events, _) = broadcast::channel(1024);
        let (revision, _) = watch::channel(initial.revision);
        Arc::new(Replica {
            state: ArcSwap::from_pointee(initial),
            recent: Mutex::new(VecDeque::new()),
            events,
            revision,
            sent: Arc::default(),
        })
    }

    /// The current state.
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.load_full()
    }

    /// The current revision.
    pub fn revision(&self) -> u64 {
        self.state.load().revision
    }

    /// A receiver that wakes on every revision change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// Wakes every `changes()` receiver without a change: for when something they look
    /// at besides the state (whether the replica is synced) has changed.
    pub fn poke(&self) {
        self.revision.send_modify(|_| {});
    }

    /// Records one applied change: `state` is the state after it.
    /// A state not newer than the current one is ignored, so the replica never goes back
    /// (a manager replaying its log from the start catches up to it silently).
    pub fn publish(&self, state: ClusterState, proposal: Proposal) {
        let revision = state.revision;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if revision <= self.state.load().revision {
            return;
        }
        if recent.len() == BACKLOG {
            recent.pop_front();
        }
        recent.push_back((revision, proposal.clone()));
        self.state.store(Arc::new(state));
        let _ = self
            .events
            .send(Outgoing::new(WatchEvent::Entry { revision, proposal }));
        drop(recent);
        self.revision.send_replace(revision);
    }

    /// Replaces the whole state (a snapshot was installed or a follower resynced).
    /// A state older than the current one is ignored.
    pub fn reset(&self, state: ClusterState) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if state.revision < self.state.load().revision {
            return;
        }
        recent.clear();
        let revision = state.revision;
        self.state.store(Arc::new(state.clone()));
        let _ = self
            .events
            .send(Outgoing::new(WatchEvent::Snapshot { state }));
        drop(recent);
        self.revision.send_replace(revision);
    }

    /// Subscribes a watcher that already has revision `since` (0: nothing).
    pub fn subscribe(&self, since: u64) -> Subscription {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.events.subscribe();
        let state = self.state.load_full();
        let backlog = if since >= state.revision {
            Vec::new()
        } else if recent.front().is_some_and(|(rev, _)| *rev <= since + 1) {
            recent
                .iter()
                .filter(|(rev, _)| *rev > since)
                .map(|(revision, proposal)| {
                    Outgoing::new(WatchEvent::Entry {
                        revision: *revision,
                        proposal: proposal.clone(),
                    })
                })
                .collect()
        } else {
            vec![Outgoing::new(WatchEvent::Snapshot {
                state: (*state).clone(),
            })]
        };
        Subscription { backlog, live }
    }

    /// Applies one event received from a manager. Returns `false` when the event does not
    /// follow from what this replica has (a gap): the caller must resubscribe.
    pub fn follow(&self, event: &WatchEvent) -> bool {
        match event {
            WatchEvent::Snapshot { state } => {
                self.reset(state.clone());
                true
            }
            WatchEvent::Entry { revision, proposal } => {
                let have = self.revision();
                if *revision <= have {
                    return true;
                }
                if *revision != have + 1 {
                    return false;
                }
                let mut next = (*self.state()).clone();
                match apply(&mut next, None, proposal) {
                    Ok(applied) if applied.revision == *revision => {
                        self.publish(next, proposal.clone());
                        true
                    }
                    other => {
                        tracing::warn!(
                            ?other,
                            revision,
                            "watch: entry did not apply as on the manager; resyncing"
                        );
                        false
                    }
                }
            }
            WatchEvent::Ping { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests;
