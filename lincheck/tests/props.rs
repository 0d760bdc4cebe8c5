//! Properties of the checker on generated histories of named objects.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use shoal_lincheck::kv::{Object, ObjectModel, Op, Reply};
use shoal_lincheck::{check, Model, Operation, Verdict};

/// What `op` answers against `store`, which it changes.
fn run(store: &mut BTreeMap<String, String>, input: &Object) -> Reply {
    let state = store.get(&input.key).cloned();
    let next = ObjectModel
        .step(&state, input, None)
        .expect("unknown outcomes are always possible");
    let reply = [
        Reply::Ok,
        Reply::AlreadyExists,
        Reply::NotFound,
        Reply::Value(state.clone()),
    ]
    .into_iter()
    .find(|r| ObjectModel.step(&state, input, Some(r)).is_some())
    .expect("some reply fits");
    match next {
        Some(v) => store.insert(input.key.clone(), v),
        None => store.remove(&input.key),
    };
    reply
}

fn op_strategy(keys: usize) -> impl Strategy<Value = Object> {
    let key = (0..keys).prop_map(|k| format!("k{k}"));
    let value = (0u8..4).prop_map(|v| v.to_string());
    (key, value, 0u8..5).prop_map(|(k, v, kind)| match kind {
        0 => Object::create(&k, &v),
        1 => Object::update(&k, &v),
        2 => Object::put(&k, &v),
        3 => Object::delete(&k),
        _ => Object::read(&k),
    })
}

/// A concurrent history of a correct store: each operation takes effect at a point
/// between its call and return (or, if its outcome is lost, maybe not at all).
/// `spec`: (operation, call, duration, where in between it takes effect (0..=100),
/// whether its outcome is lost, whether a lost one took effect).
fn concurrent(spec: &[(Object, u64, u64, u64, bool, bool)]) -> Vec<Operation<Object, Reply>> {
    let mut points: Vec<(u64, usize)> = spec
        .iter()
        .enumerate()
        .map(|(i, (_, call, len, at, _, _))| (2 * (call + len * at / 100) + 1, i))
        .collect();
    points.sort();
    let mut store = BTreeMap::new();
    let mut replies = vec![None; spec.len()];
    for (_, i) in points {
        let (input, _, _, _, lost, took_effect) = &spec[i];
        if !*lost || *took_effect {
            replies[i] = Some(run(&mut store, input));
        }
    }
    spec.iter()
        .zip(replies)
        .enumerate()
        .map(
            |(i, ((input, call, len, _, lost, _), reply))| match (lost, reply) {
                (false, Some(r)) => {
                    Operation::returned(i as u64, input.clone(), 2 * call, 2 * (call + len) + 2, r)
                }
                _ => Operation::unknown(i as u64, input.clone(), 2 * call),
            },
        )
        .collect()
}

fn spec_strategy(
    keys: usize,
    n: usize,
) -> impl Strategy<Value = Vec<(Object, u64, u64, u64, bool, bool)>> {
    prop::collection::vec(
        (
            op_strategy(keys),
            0u64..200,
            0u64..20,
            0u64..=100,
            prop::bool::weighted(0.05),
            any::<bool>(),
        ),
        1..n,
    )
}

proptest! {
    #[test]
    fn sequential_histories_are_linearizable(ops in prop::collection::vec(op_strategy(3), 0..60)) {
        let mut store = BTreeMap::new();
        let h: Vec<_> = ops.iter().enumerate().map(|(i, op)| {
            let r = run(&mut store, op);
            Operation::returned(1, op.clone(), 2 * i as u64, 2 * i as u64 + 1, r)
        }).collect();
        prop_assert_eq!(check(&ObjectModel, &h), Verdict::Linearizable);
    }

    #[test]
    fn correct_concurrent_histories_are_linearizable(spec in spec_strategy(3, 80)) {
        let h = concurrent(&spec);
        prop_assert_eq!(check(&ObjectModel, &h), Verdict::Linearizable);
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_not(
        ops in prop::collection::vec(op_strategy(2), 0..40),
        stale in 0u8..4,
    ) {
        // A sequential prefix, then an acknowledged put of a fresh value, then a read
        // that starts after the put returned and sees something else.
        let mut store = BTreeMap::new();
        let mut h: Vec<_> = ops.iter().enumerate().map(|(i, op)| {
            let r = run(&mut store, op);
            Operation::returned(1, op.clone(), 2 * i as u64, 2 * i as u64 + 1, r)
        }).collect();
        let t = 2 * h.len() as u64;
        h.push(Operation::returned(1, Object::put("k0", "fresh"), t, t + 1, Reply::Ok));
        let seen = (stale > 0).then(|| stale.to_string());
        h.push(Operation::returned(2, Object::read("k0"), t + 2, t + 3, Reply::Value(seen)));
        match check(&ObjectModel, &h) {
            Verdict::Illegal(v) => prop_assert_eq!(v.stuck, h.len() - 1),
            other => prop_assert!(false, "expected a violation, got {:?}", other),
        }
    }

    #[test]
    fn a_read_of_a_value_never_written_is_not(spec in spec_strategy(2, 60), at in 0u64..200) {
        let mut h = concurrent(&spec);
        h.push(Operation::returned(999, Object::read("k0"), 2 * at, 2 * at + 3, Reply::Value(Some("never".into()))));
        prop_assert!(matches!(check(&ObjectModel, &h), Verdict::Illegal(_)));
    }
}

#[test]
fn a_thousand_operations_on_a_few_keys_check_in_well_under_a_second() {
    // A deterministic mix: 10 clients, 4 keys, overlapping calls, 2% lost outcomes.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = move |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let spec: Vec<_> = (0..1000)
        .map(|i| {
            let k = format!("k{}", next(4));
            let v = next(5).to_string();
            let op = match next(5) {
                0 => Object::create(&k, &v),
                1 => Object::update(&k, &v),
                2 => Object::put(&k, &v),
                3 => Object::delete(&k),
                _ => Object::read(&k),
            };
            (
                op,
                i * 3 + next(5),
                1 + next(12),
                next(101),
                next(50) == 0,
                next(2) == 0,
            )
        })
        .collect();
    let h = concurrent(&spec);
    assert!(h.iter().any(|o| o.output().is_none()));
    assert!(h.iter().any(|o| matches!(o.input.op, Op::Read)));
    let start = Instant::now();
    assert_eq!(check(&ObjectModel, &h), Verdict::Linearizable);
    let took = start.elapsed();
    assert!(took < Duration::from_millis(500), "took {took:?}");
}
