//! The answering path does not allocate: a query answered from the table (A records,
//! NODATA, FORMERR) costs no heap allocation once the caller's buffer has grown, for
//! names up to 32 bytes on the wire. A longer name costs one: hickory's `Name` keeps
//! 32 bytes of labels inline and spills the rest to the heap.
//! Counted with a global allocator that tallies allocations per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use shoal_dns::{answer, Outcome, QueryContext, RecordTable, Transport};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn query(name: &str, rtype: RecordType, edns: bool) -> Vec<u8> {
    let mut msg = Message::query();
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if edns {
        msg.set_edns(Edns::new());
    }
    msg.to_vec().unwrap()
}

#[test]
fn answering_from_the_table_does_not_allocate() {
    let mut b = RecordTable::builder();
    b.add("net", "web", [Ipv4Addr::new(10, 0, 0, 2)]).unwrap();
    b.add(
        "net",
        "tasks.a-rather-long-service-name-of-forty-chars",
        (1..=20).map(|i| Ipv4Addr::new(10, 0, 0, i)),
    )
    .unwrap();
    let table = b.build();
    let ctx = QueryContext {
        client: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 50)),
        network: "net",
        transport: Transport::Udp,
        max_udp_payload: 1232,
    };
    let mut garbage = query("web.", RecordType::A, false);
    garbage[5] = 3; // three questions
                    // (query, allocations allowed)
    let queries = [
        (query("web.", RecordType::A, false), 0),
        (query("WEB.", RecordType::A, true), 0),
        (query("web.", RecordType::AAAA, false), 0),
        (garbage, 0),
        (
            query(
                "tasks.a-rather-long-service-name-of-forty-chars.",
                RecordType::A,
                true,
            ),
            1,
        ),
    ];
    let mut out = Vec::with_capacity(1232);
    for (q, allowed) in &queries {
        let before = allocations();
        let outcome = answer(&table, q, &ctx, &mut out);
        let made = allocations() - before;
        assert!(matches!(outcome, Outcome::Reply(_)), "{outcome:?}");
        assert!(made <= *allowed, "{made} allocation(s) answering {q:02x?}");
    }
    // The counter does count: a forwarded name's decision is free too, but copying the
    // query for the forwarder is not.
    let before = allocations();
    let copy = queries[0].0.to_vec();
    assert!(allocations() > before);
    drop(copy);
}
