//! The search: Wing–Gong with Lowe's just-in-time linearisation, memoised as Porcupine
//! does, one partition (key) at a time.
//!
//! The calls and returns of a partition form a doubly linked list in time order. The
//! search walks it: at a call, it tries to linearise that operation now (the model
//! accepts its output from the current state, and the pair (linearised set, new state)
//! was not explored before); if so, the call and its return leave the list and the walk
//! restarts from the front. Reaching a return means the operation it ends should have
//! been linearised already: the last choice is undone and the walk goes on after it.
//! An empty list is a linearisation; undoing with nothing to undo proves there is none.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use crate::{Model, Operation};

/// How to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Give up (with [`Verdict::Timeout`]) after this long.
    pub timeout: Option<Duration>,
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every partition has a linearisation.
    Linearizable,
    /// A partition has none.
    Illegal(Violation),
    /// The search ran out of time before finding out.
    Timeout,
}

impl Verdict {
    /// Whether the history was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        *self == Verdict::Linearizable
    }
}

/// Where a history stops being linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The partition, as the model's key prints.
    pub key: String,
    /// The longest order of operations (indices into the history) the search could
    /// linearise.
    pub longest: Vec<usize>,
    /// An operation (index into the history) that had to come next but could not.
    pub stuck: usize,
}

/// Checks `history` against `model`, without a time limit.
pub fn check<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>]) -> Verdict {
    check_with(model, history, Options::default())
}

/// Checks `history` against `model`.
pub fn check_with<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: Options,
) -> Verdict {
    let deadline = options.timeout.map(|t| Instant::now() + t);
    let mut partitions: BTreeMap<M::Key, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        partitions.entry(model.key(&op.input)).or_default().push(i);
    }
    let mut timed_out = false;
    for (key, ops) in partitions {
        match check_partition(model, history, &ops, deadline) {
            Search::Linearizable => {}
            Search::Timeout => timed_out = true,
            Search::Illegal { longest, stuck } => {
                return Verdict::Illegal(Violation {
                    key: format!("{key:?}"),
                    longest,
                    stuck,
                })
            }
        }
    }
    if timed_out {
        Verdict::Timeout
    } else {
        Verdict::Linearizable
    }
}

enum Search {
    Linearizable,
    Illegal { longest: Vec<usize>, stuck: usize },
    Timeout,
}

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// The time-ordered list of calls and returns of one partition. Node 0 is the head;
/// node `1 + 2k` is the call of the partition's `k`-th operation, `2 + 2k` its return.
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl Events {
    fn new<I, O>(history: &[Operation<I, O>], ops: &[usize]) -> Events {
        // (time, 0 for a call / 1 for a return, node): calls first at equal times, so
        // operations that touch are concurrent.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (k, &i) in ops.iter().enumerate() {
            let op = &history[i];
            order.push((op.call, 0, 1 + 2 * k));
            order.push((op.ret(), 1, 2 + 2 * k));
        }
        order.sort_unstable();
        let n = order.len() + 1;
        let mut next = vec![NIL; n];
        let mut prev = vec![NIL; n];
        let mut last = HEAD;
        for &(_, _, node) in &order {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Events { next, prev }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    /// Takes a call and its return out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(call + 1);
    }

    /// Puts them back (in the reverse order of [`Events::lift`]).
    fn unlift(&mut self, call: usize) {
        self.relink(call + 1);
        self.relink(call);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

fn check_partition<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    ops: &[usize],
    deadline: Option<Instant>,
) -> Search {
    let mut events = Events::new(history, ops);
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, M::State)> = HashSet::new();
    let mut calls: Vec<(usize, M::State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut stuck = NIL;
    let mut state = model.init();
    let mut entry = events.next[HEAD];
    let mut steps = 0u64;
    while events.next[HEAD] != NIL {
        steps += 1;
        if steps % 4096 == 0 && deadline.is_some_and(|d| Instant::now() >= d) {
            return Search::Timeout;
        }
        let k = (entry - 1) / 2;
        if entry % 2 == 1 {
            let op = &history[ops[k]];
            if let Some(next_state) = model.step(&state, &op.input, op.output()) {
                linearized.set(k);
                if seen.insert((linearized.clone(), next_state.clone())) {
                    calls.push((entry, std::mem::replace(&mut state, next_state)));
                    events.lift(entry);
                    entry = events.next[HEAD];
                    continue;
                }
                linearized.clear(k);
            }
            entry = events.next[entry];
        } else {
            if calls.len() >= longest.len() {
                longest = calls.iter().map(|(c, _)| ops[(c - 1) / 2]).collect();
                stuck = ops[k];
            }
            let Some((call, previous)) = calls.pop() else {
                return Search::Illegal { longest, stuck };
            };
            state = previous;
            linearized.clear((call - 1) / 2);
            events.unlift(call);
            entry = events.next[call];
        }
    }
    Search::Linearizable
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{Object, ObjectModel, Reply};

    fn w(client: u64, key: &str, v: &str, call: u64, ret: u64) -> Operation<Object, Reply> {
        Operation::returned(client, Object::put(key, v), call, ret, Reply::Ok)
    }

    fn r(client: u64, key: &str, v: Option<&str>, call: u64, ret: u64) -> Operation<Object, Reply> {
        let value = v.map(str::to_string);
        Operation::returned(client, Object::read(key), call, ret, Reply::Value(value))
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(check(&ObjectModel, &[]), Verdict::Linearizable);
    }

    #[test]
    fn concurrent_read_may_see_either_value() {
        let h = vec![w(1, "a", "1", 0, 10), r(2, "a", None, 1, 2)];
        assert!(check(&ObjectModel, &h).is_linearizable());
        let h = vec![w(1, "a", "1", 0, 10), r(2, "a", Some("1"), 1, 2)];
        assert!(check(&ObjectModel, &h).is_linearizable());
    }

    #[test]
    fn stale_read_is_illegal_and_reported() {
        let h = vec![
            w(1, "a", "1", 0, 1),
            w(1, "a", "2", 2, 3),
            r(2, "a", Some("1"), 4, 5),
        ];
        match check(&ObjectModel, &h) {
            Verdict::Illegal(v) => {
                assert_eq!(v.key, "\"a\"");
                assert_eq!(v.stuck, 2);
                assert_eq!(v.longest, vec![0, 1]);
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_checked_apart() {
        // Fine per key; b's violation is found although a's operations interleave.
        let h = vec![
            w(1, "a", "1", 0, 1),
            w(2, "b", "1", 0, 1),
            r(3, "a", Some("1"), 2, 3),
            r(3, "b", None, 4, 5),
        ];
        match check(&ObjectModel, &h) {
            Verdict::Illegal(v) => assert_eq!(v.key, "\"b\""),
            other => panic!("expected a violation on b, got {other:?}"),
        }
    }

    #[test]
    fn unknown_write_may_or_may_not_happen() {
        let unknown = Operation::unknown(1, Object::put("a", "1"), 0);
        let seen = vec![unknown.clone(), r(2, "a", Some("1"), 5, 6)];
        assert!(check(&ObjectModel, &seen).is_linearizable());
        let unseen = vec![unknown.clone(), r(2, "a", None, 5, 6)];
        assert!(check(&ObjectModel, &unseen).is_linearizable());
        // But once seen it cannot be unseen.
        let flicker = vec![unknown, r(2, "a", Some("1"), 5, 6), r(2, "a", None, 7, 8)];
        assert!(!check(&ObjectModel, &flicker).is_linearizable());
        // And it cannot be seen before it was called.
        let early = vec![
            r(2, "a", Some("1"), 0, 1),
            Operation::unknown(1, Object::put("a", "1"), 2),
        ];
        assert!(!check(&ObjectModel, &early).is_linearizable());
    }

    #[test]
    fn timeout_is_reported() {
        let h: Vec<_> = (0..64)
            .map(|i| Operation::unknown(i, Object::put("a", &i.to_string()), 0))
            .chain((0..64).map(|i| r(100 + i, "a", Some("never"), 1, 2)))
            .collect();
        let v = check_with(
            &ObjectModel,
            &h,
            Options {
                timeout: Some(Duration::from_millis(1)),
            },
        );
        assert_eq!(v, Verdict::Timeout);
    }
}
