//! Histories from Porcupine's test suite, with Porcupine's verdicts: Jepsen's etcd runs
//! (one register with read, write and compare-and-set) and its key-value logs (get,
//! put, append on several keys, checked per key).

use shoal_lincheck::{check, Model, Operation, Verdict};

/// etcd's register: `None` until first written.
struct Register;

#[derive(Debug, Clone)]
enum RegIn {
    Read,
    Write(i64),
    Cas(i64, i64),
}

#[derive(Debug, Clone)]
enum RegOut {
    Read(Option<i64>),
    Written,
    Cas(bool),
}

impl Model for Register {
    type State = Option<i64>;
    type Input = RegIn;
    type Output = RegOut;
    type Key = ();

    fn init(&self) -> Option<i64> {
        None
    }
    fn key(&self, _: &RegIn) {}
    fn step(&self, s: &Option<i64>, i: &RegIn, o: Option<&RegOut>) -> Option<Option<i64>> {
        match (i, o) {
            (RegIn::Read, None) => Some(*s),
            (RegIn::Read, Some(RegOut::Read(v))) => (v == s).then_some(*s),
            (RegIn::Write(v), None | Some(RegOut::Written)) => Some(Some(*v)),
            (RegIn::Cas(from, to), out) => {
                let swaps = *s == Some(*from);
                let next = if swaps { Some(*to) } else { *s };
                match out {
                    None => Some(next),
                    Some(RegOut::Cas(ok)) => (*ok == swaps).then_some(next),
                    Some(_) => None,
                }
            }
            _ => None,
        }
    }
}

/// Builds operations from (process, event) lines; a process's next event after its
/// invocation ends it. `None` outcome: unknown.
struct Builder<I, O> {
    open: std::collections::HashMap<u64, (I, u64)>,
    ops: Vec<Operation<I, O>>,
    tick: u64,
}

impl<I, O> Builder<I, O> {
    fn new() -> Self {
        Builder {
            open: Default::default(),
            ops: Vec::new(),
            tick: 0,
        }
    }
    fn invoke(&mut self, p: u64, input: I) {
        self.tick += 1;
        self.open.insert(p, (input, self.tick));
    }
    fn end(&mut self, p: u64, output: Option<O>) {
        self.tick += 1;
        let (input, call) = self.open.remove(&p).expect("a return without a call");
        self.ops.push(match output {
            Some(o) => Operation::returned(p, input, call, self.tick, o),
            None => Operation::unknown(p, input, call),
        });
    }
    fn finish(mut self) -> Vec<Operation<I, O>> {
        for (p, (input, call)) in self.open.drain() {
            self.ops.push(Operation::unknown(p, input, call));
        }
        self.ops
    }
}

fn etcd(n: u32) -> Vec<Operation<RegIn, RegOut>> {
    let path = format!("{}/tests/data/etcd_{n:03}.log", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let mut b = Builder::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("jepsen.util - ") else {
            continue;
        };
        let mut f = rest.splitn(4, char::is_whitespace);
        let (p, kind, op, value) = (f.next(), f.next(), f.next(), f.next().unwrap_or(""));
        let Some(p) = p.and_then(|p| p.parse::<u64>().ok()) else {
            continue;
        };
        let num = |s: &str| s.trim().parse::<i64>().ok();
        let pair = || {
            let v: Vec<i64> = value
                .trim_matches(|c| c == '[' || c == ']')
                .split_whitespace()
                .filter_map(num)
                .collect();
            (v[0], v[1])
        };
        match (kind, op) {
            (Some(":invoke"), Some(":read")) => b.invoke(p, RegIn::Read),
            (Some(":invoke"), Some(":write")) => b.invoke(p, RegIn::Write(num(value).unwrap())),
            (Some(":invoke"), Some(":cas")) => {
                let (from, to) = pair();
                b.invoke(p, RegIn::Cas(from, to))
            }
            (Some(":ok"), Some(":read")) => b.end(p, Some(RegOut::Read(num(value)))),
            (Some(":ok"), Some(":write")) => b.end(p, Some(RegOut::Written)),
            (Some(":ok"), Some(":cas")) => b.end(p, Some(RegOut::Cas(true))),
            (Some(":fail"), Some(":cas")) if value.starts_with('[') => {
                b.end(p, Some(RegOut::Cas(false)))
            }
            (Some(":fail" | ":info"), _) => b.end(p, None),
            _ => panic!("unexpected line {line:?}"),
        }
    }
    b.finish()
}

#[test]
fn etcd_histories_get_porcupines_verdicts() {
    for (n, ok) in [
        (0, false),
        (1, false),
        (2, true),
        (3, false),
        (5, true),
        (7, true),
        (18, true),
        (25, true),
    ] {
        let h = etcd(n);
        assert!(h.len() > 50, "etcd_{n:03}: {} operations", h.len());
        let v = check(&Register, &h);
        assert_eq!(v.is_linearizable(), ok, "etcd_{n:03}: {v:?}");
        if let Verdict::Illegal(v) = v {
            assert!(v.stuck < h.len());
        }
    }
}

/// Porcupine's key-value store: get, put and append; a missing key reads as "".
struct Kv;

#[derive(Debug, Clone)]
enum KvIn {
    Get(String),
    Put(String, String),
    Append(String, String),
}

impl Model for Kv {
    type State = String;
    type Input = KvIn;
    type Output = String;
    type Key = String;

    fn init(&self) -> String {
        String::new()
    }
    fn key(&self, i: &KvIn) -> String {
        match i {
            KvIn::Get(k) | KvIn::Put(k, _) | KvIn::Append(k, _) => k.clone(),
        }
    }
    fn step(&self, s: &String, i: &KvIn, o: Option<&String>) -> Option<String> {
        match i {
            KvIn::Get(_) => o.is_none_or(|o| o == s).then(|| s.clone()),
            KvIn::Put(_, v) => Some(v.clone()),
            KvIn::Append(_, v) => Some(format!("{s}{v}")),
        }
    }
}

/// The quoted string after `field` in an EDN map line.
fn quoted<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let at = line.find(field)? + field.len();
    let rest = line[at..].strip_prefix(" \"")?;
    Some(&rest[..rest.find('"')?])
}

fn kv(name: &str) -> Vec<Operation<KvIn, String>> {
    let path = format!("{}/tests/data/kv-{name}.txt", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let mut b = Builder::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let p: u64 = line
            .split(":process ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.parse().ok())
            .expect("process");
        let key = quoted(line, ":key").expect("key").to_string();
        let value = quoted(line, ":value").map(str::to_string);
        let f = |name: &str| line.contains(&format!(":f :{name},"));
        if line.contains(":type :invoke") {
            let input = match (f("get"), f("put"), value) {
                (true, _, _) => KvIn::Get(key),
                (_, true, Some(v)) => KvIn::Put(key, v),
                (_, _, Some(v)) => KvIn::Append(key, v),
                _ => panic!("unexpected line {line:?}"),
            };
            b.invoke(p, input);
        } else if line.contains(":type :ok") {
            b.end(p, Some(value.unwrap_or_default()));
        } else {
            panic!("unexpected line {line:?}");
        }
    }
    b.finish()
}

#[test]
fn kv_histories_get_porcupines_verdicts() {
    for (name, ok) in [
        ("c01-ok", true),
        ("c01-bad", false),
        ("c10-ok", true),
        ("c10-bad", false),
    ] {
        let h = kv(name);
        let v = check(&Kv, &h);
        assert_eq!(v.is_linearizable(), ok, "kv-{name}: {v:?}");
    }
}
