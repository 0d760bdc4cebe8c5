use super::*;
use crate::state::{Command, Proposal};

fn initialised(rev: u64) -> ClusterState {
    ClusterState {
        cluster_id: "c".into(),
        revision: rev,
        ..Default::default()
    }
}

fn noop() -> Proposal {
    Proposal {
        at_ms: 1,
        command: Command::Noop,
    }
}

#[test]
fn subscriber_gets_backlog_when_it_reaches_back() {
    let r = Replica::new(initialised(0));
    for rev in 1..=5 {
        r.publish(initialised(rev), noop());
    }
    let sub = r.subscribe(3);
    let revs: Vec<u64> = sub
        .backlog
        .iter()
        .map(|e| match &e.event {
            WatchEvent::Entry { revision, .. } => *revision,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(revs, vec![4, 5]);
    assert!(r.subscribe(5).backlog.is_empty());
    assert!(r.subscribe(9).backlog.is_empty());
}

#[test]
fn subscriber_too_far_behind_gets_a_snapshot() {
    let r = Replica::new(initialised(10));
    r.publish(initialised(11), noop());
    let sub = r.subscribe(2);
    assert_eq!(sub.backlog.len(), 1);
    assert!(
        matches!(&sub.backlog[0].event, WatchEvent::Snapshot { state } if state.revision == 11)
    );
}

#[test]
fn replica_never_goes_back() {
    let r = Replica::new(initialised(5));
    r.publish(initialised(3), noop());
    r.reset(initialised(4));
    assert_eq!(r.revision(), 5);
}

#[test]
fn follower_applies_in_order_and_detects_gaps() {
    let r = Replica::new(initialised(1));
    assert!(r.follow(&WatchEvent::Entry {
        revision: 2,
        proposal: noop()
    }));
    assert_eq!(r.revision(), 2);
    assert!(r.follow(&WatchEvent::Entry {
        revision: 2,
        proposal: noop()
    }));
    assert!(!r.follow(&WatchEvent::Entry {
        revision: 4,
        proposal: noop()
    }));
    assert!(r.follow(&WatchEvent::Snapshot {
        state: initialised(7)
    }));
    assert_eq!(r.revision(), 7);
}

#[tokio::test]
async fn live_subscribers_see_new_entries() {
    let r = Replica::new(initialised(0));
    let mut sub = r.subscribe(0);
    r.publish(initialised(1), noop());
    let e = sub.live.recv().await.unwrap();
    assert!(matches!(&e.event, WatchEvent::Entry { revision: 1, .. }));
}

#[test]
fn an_event_is_encoded_once_for_every_watcher_and_counted() {
    let r = Replica::new(initialised(0));
    let (mut a, mut b) = (r.subscribe(0), r.subscribe(0));
    r.publish(initialised(1), noop());
    let (ea, eb) = (a.live.try_recv().unwrap(), b.live.try_recv().unwrap());
    assert!(Arc::ptr_eq(&ea, &eb));
    let line = ea.line().unwrap();
    assert!(std::ptr::eq(line, eb.line().unwrap()));
    assert!(line.ends_with(b"\n"));
    let back: WatchEvent = serde_json::from_slice(line).unwrap();
    assert_eq!(back, ea.event);

    let guard = r.sent.watcher();
    r.sent.sent(&ea.event, line.len());
    r.sent.sent(
        &WatchEvent::Snapshot {
            state: initialised(1),
        },
        1000,
    );
    let info = r.sent.info();
    assert_eq!(info.watchers, 1);
    assert_eq!(info.events_sent, 2);
    assert_eq!(info.snapshots_sent, 1);
    assert_eq!(info.bytes_sent, line.len() as u64 + 1000);
    drop(guard);
    assert_eq!(r.sent.info().watchers, 0);
}
