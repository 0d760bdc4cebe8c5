//! Property tests: [`AddressSpace`] against a plain reference model that
//! scans the whole range for every allocation.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// The obvious, slow allocator the real one must agree with.
#[derive(Debug, Clone)]
struct Model {
    subnet: Ipv4Net,
    range: Vec<Ipv4Addr>,
    special: BTreeSet<Ipv4Addr>,
    leases: BTreeMap<Ipv4Addr, String>,
    cursor: Option<usize>,
}

impl Model {
    fn of(space: &AddressSpace) -> Self {
        let subnet = space.subnet();
        let mut special: BTreeSet<_> = space.aux().values().copied().collect();
        special.extend([subnet.network(), subnet.broadcast(), space.gateway()]);
        let first = u32::from(space.range().network());
        let last = u32::from(space.range().broadcast());
        Model {
            subnet,
            range: (first..=last).map(Ipv4Addr::from).collect(),
            special,
            leases: BTreeMap::new(),
            cursor: None,
        }
    }

    fn is_free(&self, ip: Ipv4Addr) -> bool {
        !self.special.contains(&ip) && !self.leases.contains_key(&ip)
    }

    fn allocate(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let n = self.range.len();
        let start = self.cursor.map_or(0, |c| c + 1);
        let index = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.is_free(self.range[i]))?;
        self.cursor = Some(index);
        self.leases.insert(self.range[index], owner.to_owned());
        Some(self.range[index])
    }

    fn reserve(&mut self, ip: Ipv4Addr, owner: &str) -> bool {
        let ok = self.subnet.contains(&ip)
            && !self.special.contains(&ip)
            && self.leases.get(&ip).is_none_or(|o| o == owner);
        if ok {
            self.leases.insert(ip, owner.to_owned());
        }
        ok
    }
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(u8),
    Reserve(u32, u8),
    Release(usize),
    ReleaseOwner(u8),
}

fn owner(n: u8) -> String {
    format!("ep{n}")
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..4).prop_map(Op::Allocate),
        2 => (0u32..1100, 0u8..4).prop_map(|(o, n)| Op::Reserve(o, n)),
        3 => any::<usize>().prop_map(Op::Release),
        1 => (0u8..4).prop_map(Op::ReleaseOwner),
    ]
}

/// A valid address space: a /22../30 near the bottom of 10/8 or the top of
/// the address space, with optional gateway, range and aux addresses.
fn arb_space() -> impl Strategy<Value = AddressSpace> {
    let base = prop_oneof![Just(0x0a00_0000u32), Just(0xffff_0000u32)];
    (base, 22u8..=30)
        .prop_flat_map(|(base, prefix)| {
            let size = 1u32 << (32 - prefix);
            let subnet = (0..65_536 / size).prop_map(move |i| {
                Ipv4Net::new(Ipv4Addr::from(base + i * size), prefix).expect("prefix <= 30")
            });
            let range =
                (prefix..=32u8).prop_flat_map(move |rp| (Just(rp), 0..1u32 << (rp - prefix)));
            let aux = prop::collection::btree_map("[a-e]", 1..size - 1, 0..3);
            (
                subnet,
                prop::option::of(1..size - 1),
                prop::option::of(range),
                aux,
            )
        })
        .prop_filter_map("conflicting request", |(subnet, gw, range, aux)| {
            let at = |offset: u32| Ipv4Addr::from(u32::from(subnet.network()) + offset);
            let req = SubnetRequest {
                subnet: None,
                gateway: gw.map(at),
                ip_range: range.map(|(rp, i)| {
                    Ipv4Net::new(at(i << (32 - u32::from(rp))), rp).expect("prefix <= 32")
                }),
                aux_addresses: aux.into_iter().map(|(n, o)| (n, at(o))).collect(),
            };
            AddressSpace::new(subnet, &req).ok()
        })
}

/// Applies `op` to both, checking they agree.
fn step(space: &mut AddressSpace, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Allocate(n) => {
            let got = space.allocate(&owner(n)).ok();
            if let Some(ip) = got {
                prop_assert!(model.is_free(ip), "{ip} handed out twice or special");
                prop_assert!(space.range().contains(&ip));
            }
            prop_assert_eq!(got, model.allocate(&owner(n)));
        }
        Op::Reserve(offset, n) => {
            let ip = Ipv4Addr::from(u32::from(space.subnet().network()).wrapping_add(offset));
            let got = space.reserve(ip, &owner(n)).is_ok();
            prop_assert_eq!(got, model.reserve(ip, &owner(n)));
        }
        Op::Release(pick) => {
            let leased: Vec<_> = model.leases.keys().copied().collect();
            if let Some(&ip) = leased.get(pick % leased.len().max(1)) {
                prop_assert_eq!(space.release(ip), model.leases.remove(&ip));
            }
        }
        Op::ReleaseOwner(n) => {
            let freed = space.release_owner(&owner(n));
            let expected: Vec<_> = model
                .leases
                .iter()
                .filter(|(_, o)| **o == owner(n))
                .map(|(ip, _)| *ip)
                .collect();
            model.leases.retain(|_, o| *o != owner(n));
            prop_assert_eq!(freed, expected);
        }
    }
    prop_assert_eq!(space.in_use() as usize, model.leases.len());
    Ok(())
}

proptest! {
    #[test]
    fn allocator_agrees_with_the_reference_model(
        mut space in arb_space(),
        ops in prop::collection::vec(arb_op(), 0..300),
    ) {
        let mut model = Model::of(&space);
        for op in &ops {
            step(&mut space, &mut model, op)?;
        }
        let table: BTreeMap<_, _> = space.lease_table().clone().into_iter().collect();
        prop_assert_eq!(&table, &model.leases);
    }

    #[test]
    fn allocations_never_duplicate_and_avoid_reserved_addresses(space in arb_space()) {
        let mut space = space;
        let mut seen = BTreeSet::new();
        while let Ok(ip) = space.allocate("a") {
            prop_assert!(seen.insert(ip), "{ip} handed out twice");
            prop_assert!(space.range().contains(&ip));
            let subnet = space.subnet();
            prop_assert!(ip != subnet.network() && ip != subnet.broadcast());
            prop_assert!(ip != space.gateway());
            prop_assert!(!space.aux().values().any(|a| *a == ip));
        }
        prop_assert_eq!(seen.len() as u32, space.capacity());
        prop_assert_eq!(space.in_use(), space.capacity());
    }

    #[test]
    fn releasing_everything_keeps_the_cursor_serial(
        space in arb_space(),
        n in 1usize..600,
    ) {
        let mut space = space;
        let mut model = Model::of(&space);
        let mut handed = Vec::new();
        for _ in 0..n {
            match space.allocate("a") {
                Ok(ip) => handed.push(ip),
                Err(_) => break,
            }
            model.allocate("a");
        }
        for ip in &handed {
            prop_assert_eq!(space.release(*ip), Some("a".to_string()));
        }
        model.leases.clear();
        prop_assert_eq!(space.in_use(), 0);
        let next = space.allocate("b").ok();
        prop_assert_eq!(next, model.allocate("b"));
        if handed.len() < space.capacity() as usize {
            // No wrap yet: the next address lies after everything handed out.
            let next = next.expect("room");
            prop_assert!(handed.iter().all(|ip| *ip < next));
        }
    }

    #[test]
    fn json_round_trip_preserves_behaviour(
        space in arb_space(),
        ops in prop::collection::vec(arb_op(), 0..100),
    ) {
        let mut space = space;
        let mut model = Model::of(&space);
        for op in &ops {
            step(&mut space, &mut model, op)?;
        }
        let json = serde_json::to_string(&space).expect("serialize");
        let mut back: AddressSpace = serde_json::from_str(&json).expect("deserialize");
        prop_assert_eq!(&back, &space);
        for _ in 0..3 {
            prop_assert_eq!(back.allocate("z"), space.allocate("z"));
        }
    }
}
