//! The pure half of a nemesis run: which operation a client does next, which fault the
//! nemesis injects next, what an API answer means for the history, and the checks of the
//! final state (addresses given twice, kernel objects the state no longer has).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use rand::rngs::StdRng;
use rand::Rng;
use shoal_lincheck::kv::{Object, Op, Reply};

/// The kinds of object clients work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A label of the run's service (put and read).
    Label,
    /// A network (create, delete, read); its value is a label on it.
    Network,
    /// A service with one task (create, delete, read); its value is a label on it.
    Service,
}

impl Kind {
    /// The kind of the object named `key` (`label-3`, `net-1`, `svc-0`).
    pub fn of(key: &str) -> Kind {
        if key.starts_with("net-") {
            Kind::Network
        } else if key.starts_with("svc-") {
            Kind::Service
        } else {
            Kind::Label
        }
    }
}

/// An object name is retired for a fresh one (Jepsen's independent keys) after this
/// many operations whose outcome is unknown: each of them may take effect any time
/// after its call, or never, and the checker's search grows exponentially with how
/// many a name has.
pub const UNKNOWN_PER_NAME: u64 = 2;

/// The longest pause of a client between two operations (a random pause, 50 ms on
/// average: each client does about 20 operations a second).
pub const STAGGER: std::time::Duration = std::time::Duration::from_millis(100);

/// ... or after this many operations, so histories per name stay short.
pub const OPS_PER_NAME: u64 = 60;

/// The names clients use: `per_kind` slots of each kind (`label-0-<run>`,
/// `net-0-<run>`, `svc-0-<run>`, ...; the run's tag keeps a lab's earlier runs out),
/// each named with its generation (`net-0-1a2b3c-g3`), which moves on when the name is
/// retired.
#[derive(Debug, Clone)]
pub struct Names {
    /// Slot → (generation, operations on it, unknown outcomes).
    slots: BTreeMap<String, (u64, u64, u64)>,
}

impl Names {
    /// Generation 0 of every slot of the run seeded `seed`.
    pub fn new(per_kind: usize, seed: u64) -> Names {
        let tag = format!("{:06x}", seed & 0xff_ffff);
        let mut slots = BTreeMap::new();
        for i in 0..per_kind.max(1) {
            for kind in ["label", "net", "svc"] {
                slots.insert(format!("{kind}-{i}-{tag}"), (0, 0, 0));
            }
        }
        Names { slots }
    }

    /// The names in use now.
    pub fn current(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|(slot, (g, _, _))| format!("{slot}-g{g}"))
            .collect()
    }

    /// Every name used so far (for the final reads).
    pub fn all(&self) -> Vec<String> {
        self.slots
            .iter()
            .flat_map(|(slot, (g, _, _))| (0..=*g).map(move |g| format!("{slot}-g{g}")))
            .collect()
    }

    /// Counts an operation on `name`, and retires the name when it has had enough
    /// (an operation on an already retired name counts for nothing).
    pub fn record(&mut self, name: &str, unknown: bool) {
        let Some((slot, generation)) = name
            .rsplit_once("-g")
            .and_then(|(slot, g)| Some((slot, g.parse::<u64>().ok()?)))
        else {
            return;
        };
        let Some((g, ops, unknowns)) = self.slots.get_mut(slot) else {
            return;
        };
        if *g != generation {
            return;
        }
        *ops += 1;
        *unknowns += u64::from(unknown);
        if *ops >= OPS_PER_NAME || *unknowns >= UNKNOWN_PER_NAME {
            (*g, *ops, *unknowns) = (*g + 1, 0, 0);
        }
    }
}

/// The next operation of client `client` (its `n`-th), on one of `keys`.
pub fn next_op(rng: &mut StdRng, keys: &[String], client: u64, n: u64) -> Object {
    let key = &keys[rng.gen_range(0..keys.len())];
    let value = format!("c{client}-{n}");
    let roll: u32 = rng.gen_range(0..100);
    match Kind::of(key) {
        Kind::Label if roll < 45 => Object::put(key, &value),
        Kind::Label => Object::read(key),
        _ if roll < 30 => Object::create(key, &value),
        _ if roll < 50 => Object::delete(key),
        _ => Object::read(key),
    }
}

/// What the nemesis does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Cut the hosts into these groups.
    Partition(Vec<Vec<String>>),
    /// SIGSTOP this manager's agent.
    Pause(String),
    /// kill -9 this manager's agent (started again at the next heal).
    Kill(String),
    /// Undo every fault.
    Heal,
}

impl Fault {
    /// How the fault reads in the run's log.
    pub fn describe(&self) -> String {
        match self {
            Fault::Partition(groups) => {
                let groups: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
                format!("partition {}", groups.join(" / "))
            }
            Fault::Pause(h) => format!("pause {h}"),
            Fault::Kill(h) => format!("kill -9 {h}"),
            Fault::Heal => "heal".into(),
        }
    }
}

/// The next fault, after `previous`: faults alternate with heals, so each fault is
/// undone before the next; a fault is a random partition (a random minority of the
/// managers cut off, or the leader alone), a pause or a crash (the leader half the time).
pub fn next_fault(
    rng: &mut StdRng,
    previous: Option<&Fault>,
    managers: &[String],
    workers: &[String],
    leader: Option<&str>,
) -> Fault {
    if previous.is_some_and(|f| *f != Fault::Heal) {
        return Fault::Heal;
    }
    let pick_manager = |rng: &mut StdRng| -> String {
        match leader {
            Some(l) if rng.gen_bool(0.5) => l.to_string(),
            _ => managers[rng.gen_range(0..managers.len())].clone(),
        }
    };
    match rng.gen_range(0..4) {
        0 | 1 => {
            let cut: Vec<String> = if rng.gen_bool(0.5) && leader.is_some() {
                vec![leader.unwrap_or_default().to_string()]
            } else {
                // A minority: the rest keep a quorum.
                let size = rng.gen_range(1..=((managers.len() - 1) / 2).max(1));
                let mut rest = managers.to_vec();
                let mut cut = Vec::new();
                for _ in 0..size.min(rest.len()) {
                    cut.push(rest.remove(rng.gen_range(0..rest.len())));
                }
                cut
            };
            let mut a = cut;
            let mut b: Vec<String> = managers
                .iter()
                .filter(|m| !a.contains(m))
                .cloned()
                .collect();
            for w in workers {
                if rng.gen_bool(0.5) {
                    a.push(w.clone());
                } else {
                    b.push(w.clone());
                }
            }
            Fault::Partition(vec![a, b])
        }
        2 => Fault::Pause(pick_manager(rng)),
        _ => Fault::Kill(pick_manager(rng)),
    }
}

/// How an answer counts in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Known: the store answered this.
    Known(Reply),
    /// Unknown: the change may have been made or not (a timeout, an agent that did not
    /// answer, an error after the proposal may have gone out).
    Unknown,
    /// Certainly without effect (a read that failed): left out of the history.
    NoEffect,
}

/// What an API answer to `op` means: `status` is the HTTP status (`None`: no answer),
/// `value` the value read or the object's label when there was a body.
pub fn classify(op: &Op, status: Option<u16>, value: Option<String>) -> Outcome {
    match (op, status) {
        (Op::Read, Some(200)) => Outcome::Known(Reply::Value(value)),
        (Op::Read, Some(404)) => Outcome::Known(Reply::Value(None)),
        (Op::Read, _) => Outcome::NoEffect,
        (_, Some(s)) if (200..300).contains(&s) => Outcome::Known(Reply::Ok),
        (Op::Create(_), Some(409)) => Outcome::Known(Reply::AlreadyExists),
        (Op::Delete | Op::Update(_), Some(404)) => Outcome::Known(Reply::NotFound),
        // A request refused before it reached the store cannot have changed it.
        (_, Some(400)) => Outcome::NoEffect,
        _ => Outcome::Unknown,
    }
}

/// Addresses given out twice in the final state: overlapping network subnets, and the
/// same address twice among one network's VIPs and endpoints.
pub fn duplicate_addresses(
    subnets: &BTreeMap<String, Ipv4Net>,
    addresses: &BTreeMap<String, Vec<(String, Ipv4Addr)>>,
) -> Vec<String> {
    let mut found = Vec::new();
    let nets: Vec<(&String, &Ipv4Net)> = subnets.iter().collect();
    for (i, (a, na)) in nets.iter().enumerate() {
        for (b, nb) in &nets[i + 1..] {
            if na.contains(&nb.network()) || nb.contains(&na.network()) {
                found.push(format!("networks {a} ({na}) and {b} ({nb}) overlap"));
            }
        }
    }
    for (network, owned) in addresses {
        let mut seen: BTreeMap<Ipv4Addr, &str> = BTreeMap::new();
        for (owner, ip) in owned {
            if let Some(first) = seen.insert(*ip, owner) {
                found.push(format!("{ip} on {network} is both {first}'s and {owner}'s"));
            }
        }
    }
    found
}

/// Kernel objects on `node` the state no longer has: task sandboxes (namespaces named
/// `<prefix>t<the task ID's first 12 characters>`) of tasks not on that node, bridges (`shl-b<VNI>`) of networks
/// that are gone, endpoint veths (`shl-e<ID prefix>`) of endpoints that are gone.
pub fn stale_kernel_objects(
    node: &str,
    namespaces: &[String],
    links: &[String],
    task_prefix: &str,
    tasks_here: &BTreeSet<String>,
    vnis: &BTreeSet<u32>,
    endpoint_ids: &BTreeSet<String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for ns in namespaces {
        if let Some(id) = ns
            .strip_prefix(task_prefix)
            .and_then(|r| r.strip_prefix('t'))
        {
            if id.is_empty() || !tasks_here.iter().any(|t| t.starts_with(id)) {
                found.push(format!(
                    "{node}: sandbox {ns} of a task the state does not place here"
                ));
            }
        }
    }
    for link in links {
        if let Some(vni) = link
            .strip_prefix("shl-b")
            .and_then(|v| v.parse::<u32>().ok())
        {
            if !vnis.contains(&vni) {
                found.push(format!("{node}: bridge {link} of a network that is gone"));
            }
        }
        if let Some(short) = link.strip_prefix("shl-e") {
            if !endpoint_ids.iter().any(|id| id.starts_with(short)) {
                found.push(format!("{node}: veth {link} of an endpoint that is gone"));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn operations_and_faults_are_replayable_from_the_seed() {
        let keys = Names::new(2, 7).current();
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let ops: Vec<Object> = (0..50).map(|n| next_op(&mut rng, &keys, 1, n)).collect();
            let managers = vec!["n1".to_string(), "n2".into(), "n3".into()];
            let mut prev = None;
            let mut faults = Vec::new();
            for _ in 0..20 {
                let f = next_fault(
                    &mut rng,
                    prev.as_ref(),
                    &managers,
                    &["n4".into()],
                    Some("n2"),
                );
                faults.push(f.clone());
                prev = Some(f);
            }
            (ops, faults)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let (ops, faults) = run(7);
        assert!(ops.iter().any(|o| matches!(o.op, Op::Create(_))));
        assert!(ops.iter().any(|o| o.op == Op::Read));
        // Every other fault is a heal; partitions keep a majority of managers together.
        for pair in faults.chunks(2) {
            assert_ne!(pair[0], Fault::Heal);
            assert_eq!(pair.get(1), Some(&Fault::Heal));
            if let Fault::Partition(groups) = &pair[0] {
                let managers_in = |g: &Vec<String>| g.iter().filter(|h| h.as_str() < "n4").count();
                assert!(groups.iter().any(|g| managers_in(g) >= 2), "{groups:?}");
            }
        }
    }

    #[test]
    fn names_are_retired_after_unknown_outcomes_or_many_operations() {
        let mut n = Names::new(1, 0xabc);
        assert_eq!(
            n.current(),
            ["label-0-000abc-g0", "net-0-000abc-g0", "svc-0-000abc-g0"]
        );
        assert_eq!(Kind::of("net-0-000abc-g7"), Kind::Network);
        n.record("net-0-000abc-g0", true);
        n.record("net-0-000abc-g0", false);
        assert_eq!(n.current()[1], "net-0-000abc-g0");
        n.record("net-0-000abc-g0", true);
        assert_eq!(
            n.current()[1],
            "net-0-000abc-g1",
            "two unknown outcomes retire it"
        );
        // A late answer for the retired name changes nothing.
        n.record("net-0-000abc-g0", true);
        n.record("net-0-000abc-g0", true);
        assert_eq!(n.current()[1], "net-0-000abc-g1");
        for _ in 0..OPS_PER_NAME {
            n.record("svc-0-000abc-g0", false);
        }
        assert_eq!(n.current()[2], "svc-0-000abc-g1");
        assert_eq!(n.all().len(), 5);
        assert!(n.all().contains(&"net-0-000abc-g0".to_string()));
        // Another run's names are its own.
        assert_ne!(
            Names::new(1, 0xabd).current(),
            Names::new(1, 0xabc).current()
        );
        // Names not of this run, or malformed, are ignored.
        n.record("net-0-000abd-g0", true);
        n.record("net-9-000abc-g0", true);
        n.record("net-0-000abc", true);
        n.record("net-0-000abc-gx", true);
        assert_eq!(n.all().len(), 5);
    }

    #[test]
    fn answers_are_known_unknown_or_without_effect() {
        let create = Op::Create("v".into());
        assert_eq!(
            classify(&create, Some(201), None),
            Outcome::Known(Reply::Ok)
        );
        assert_eq!(
            classify(&create, Some(409), None),
            Outcome::Known(Reply::AlreadyExists)
        );
        assert_eq!(classify(&create, Some(503), None), Outcome::Unknown);
        assert_eq!(classify(&create, None, None), Outcome::Unknown);
        assert_eq!(classify(&create, Some(400), None), Outcome::NoEffect);
        assert_eq!(
            classify(&Op::Delete, Some(404), None),
            Outcome::Known(Reply::NotFound)
        );
        assert_eq!(
            classify(&Op::Read, Some(200), Some("v".into())),
            Outcome::Known(Reply::Value(Some("v".into())))
        );
        assert_eq!(
            classify(&Op::Read, Some(404), None),
            Outcome::Known(Reply::Value(None))
        );
        assert_eq!(classify(&Op::Read, Some(503), None), Outcome::NoEffect);
    }

    #[test]
    fn duplicates_and_overlaps_are_found() {
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        let subnets = BTreeMap::from([
            ("a".to_string(), net("10.0.0.0/24")),
            ("b".to_string(), net("10.0.1.0/24")),
            ("c".to_string(), net("10.0.0.128/25")),
        ]);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let addresses = BTreeMap::from([(
            "a".to_string(),
            vec![
                ("vip s1".to_string(), ip("10.0.0.2")),
                ("task t1".to_string(), ip("10.0.0.3")),
                ("task t2".to_string(), ip("10.0.0.2")),
            ],
        )]);
        let found = duplicate_addresses(&subnets, &addresses);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("a (10.0.0.0/24) and c"));
        assert!(found[1].contains("10.0.0.2"));
        let one = BTreeMap::from([("a".to_string(), net("10.0.0.0/24"))]);
        assert!(duplicate_addresses(&one, &BTreeMap::new()).is_empty());
    }

    #[test]
    fn leftovers_in_the_kernel_are_named() {
        let found = stale_kernel_objects(
            "n1",
            &[
                "shl-l-n1-t324d35cf943f".into(),
                "shl-l-n1-tdef".into(),
                "other".into(),
            ],
            &[
                "shl-b4097".into(),
                "shl-b4098".into(),
                "shl-e1234abcd".into(),
                "eth0".into(),
            ],
            "shl-l-n1-",
            &BTreeSet::from(["324d35cf943f02e0".to_string()]),
            &BTreeSet::from([4097]),
            &BTreeSet::from(["ffff0000aaaa".to_string()]),
        );
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("shl-l-n1-tdef"));
        assert!(found[1].contains("shl-b4098"));
        assert!(found[2].contains("shl-e1234abcd"));
    }
}
