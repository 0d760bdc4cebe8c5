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
        .map(|e| match &**e {
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
    assert!(matches!(&*sub.backlog[0], WatchEvent::Snapshot { state } if state.revision == 11));
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
    assert!(matches!(&*e, WatchEvent::Entry { revision: 1, .. }));
}
