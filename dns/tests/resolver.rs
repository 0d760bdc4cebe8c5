//! The resolver served on loopback, queried like a sandbox would, with a fake upstream
//! resolver run by the test on another loopback port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{rdata::A, Name, RData, Record, RecordType};
use shoal_dns::{RecordTable, Resolver, ResolverConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;

/// What the fake upstream answers for every A query.
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);
const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
const DB_VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The test's "sandbox": the loopback address its client sockets bind to.
const SANDBOX: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// `front`: web, tasks.web, big (100 addresses). `back`: db. The sandbox is on front.
fn table() -> RecordTable {
    let mut b = RecordTable::builder();
    b.add("front", "web", [WEB_VIP]).unwrap();
    b.add(
        "front",
        "tasks.web",
        [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)],
    )
    .unwrap();
    b.add("front", "big", (0..100).map(|i| Ipv4Addr::new(10, 0, 9, i)))
        .unwrap();
    b.add("back", "db", [DB_VIP]).unwrap();
    b.attach(SANDBOX, "front").unwrap();
    b.build()
}

/// A fake upstream: answers every query with `UPSTREAM_ANSWER` (or stays silent) and
/// records the names it was asked.
struct FakeUpstream {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
}

async fn fake_upstream(silent: bool) -> FakeUpstream {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let name = q.queries[0].name().clone();
            log.lock().unwrap().push(name.to_ascii());
            if silent {
                continue;
            }
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_available = true;
            r.add_query(q.queries[0].clone());
            r.add_answer(Record::from_rdata(name, 300, RData::A(A(UPSTREAM_ANSWER))));
            let _ = sock.send_to(&r.to_vec().unwrap(), peer).await;
        }
    });
    FakeUpstream { addr, asked }
}

/// A resolver serving network `front` on a free loopback port.
struct Running {
    resolver: Resolver,
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start(upstreams: &[SocketAddr], config: ResolverConfig) -> Running {
    let resolver = Resolver::new(config).unwrap();
    resolver.update(table());
    resolver.set_upstreams(upstreams.iter().copied());
    let listener = resolver
        .bind("127.0.0.1:0".parse().unwrap(), "front")
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));
    Running {
        resolver,
        addr,
        _stop: stop,
    }
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut msg = Message::query();
    msg.metadata.id = rand_id();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    msg.to_vec().unwrap()
}

/// A different ID for every query the tests send.
fn rand_id() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0x5A5A);
    NEXT.fetch_add(7919, Ordering::Relaxed)
}

/// Sends `bytes` over UDP from `from` and waits (up to 5 s) for one reply.
async fn udp_exchange_from(from: IpAddr, server: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind((from, 0)).await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .expect("no reply within 5 s")
        .unwrap();
    buf.truncate(n);
    buf
}

async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let bytes = query(name, rtype);
    let reply = Message::from_vec(&udp_exchange_from(SANDBOX, server, &bytes).await).unwrap();
    assert_eq!(reply.metadata.id.to_be_bytes(), bytes[..2], "reply ID");
    reply
}

fn addrs(msg: &Message) -> Vec<Ipv4Addr> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn known_name_resolves_to_its_ips() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let reply = ask(dns.addr, "web.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(addrs(&reply), [WEB_VIP]);
    let mut tasks = addrs(&ask(dns.addr, "TASKS.web.", RecordType::A).await);
    tasks.sort();
    assert_eq!(
        tasks,
        [Ipv4Addr::new(10, 0, 1, 3), Ipv4Addr::new(10, 0, 1, 4)]
    );
    assert!(up.asked.lock().unwrap().is_empty(), "nothing forwarded");
}

#[tokio::test]
async fn a_name_on_another_network_is_forwarded_not_answered() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let reply = ask(dns.addr, "db.", RecordType::A).await;
    assert_eq!(
        addrs(&reply),
        [UPSTREAM_ANSWER],
        "must not see back's {DB_VIP}"
    );
    assert_eq!(*up.asked.lock().unwrap(), ["db."]);
}

#[tokio::test]
async fn a_client_the_table_does_not_know_sees_the_arrival_network_only() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let reply = udp_exchange_from(stranger, dns.addr, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&Message::from_vec(&reply).unwrap()), [WEB_VIP]);
}

#[tokio::test]
async fn aaaa_for_a_known_name_is_nodata() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let reply = ask(dns.addr, "web.", RecordType::AAAA).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    assert!(
        up.asked.lock().unwrap().is_empty(),
        "NODATA is ours, not forwarded"
    );
}

#[tokio::test]
async fn an_external_name_gets_the_upstreams_answer() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let reply = ask(dns.addr, "example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&reply), [UPSTREAM_ANSWER]);
    assert!(!reply.metadata.authoritative);
    assert_eq!(dns.resolver.stats().forwarded, 1);
}

#[tokio::test]
async fn a_silent_upstream_means_servfail_within_the_timeout() {
    let up = fake_upstream(true).await;
    let timeout = Duration::from_millis(300);
    let config = ResolverConfig {
        forward_timeout: timeout,
        ..ResolverConfig::default()
    };
    let dns = start(&[up.addr], config).await;
    let started = Instant::now();
    let reply = ask(dns.addr, "example.com.", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "{took:?}"
    );
    assert_eq!(*up.asked.lock().unwrap(), ["example.com."]);
    let stats = dns.resolver.stats();
    assert_eq!((stats.forward_failures, stats.servfail), (1, 1));
}

#[tokio::test]
async fn garbage_gets_formerr_and_no_header_gets_nothing() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let mut garbage = vec![0x13, 0x37, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    garbage.extend_from_slice(&[0xC5; 300]);
    let reply = Message::from_vec(&udp_exchange_from(SANDBOX, dns.addr, &garbage).await).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(reply.metadata.id, 0x1337);
    // Too short to have an ID: dropped; the server still answers the next query.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(&[1, 2, 3], dns.addr).await.unwrap();
    assert_eq!(
        addrs(&ask(dns.addr, "web.", RecordType::A).await),
        [WEB_VIP]
    );
    let stats = dns.resolver.stats();
    assert_eq!((stats.formerr, stats.dropped), (1, 1));
}

#[tokio::test]
async fn a_table_swap_is_seen_by_the_next_query() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    assert_eq!(
        addrs(&ask(dns.addr, "web.", RecordType::A).await),
        [WEB_VIP]
    );
    let moved = Ipv4Addr::new(10, 0, 1, 200);
    let mut b = RecordTable::builder();
    b.add("front", "web", [moved]).unwrap();
    b.add("front", "new-svc", [Ipv4Addr::new(10, 0, 1, 201)])
        .unwrap();
    dns.resolver.update(b.build());
    assert_eq!(addrs(&ask(dns.addr, "web.", RecordType::A).await), [moved]);
    assert_eq!(
        addrs(&ask(dns.addr, "new-svc.", RecordType::A).await),
        [Ipv4Addr::new(10, 0, 1, 201)]
    );
    // web has no tasks entry any more: NODATA; `big` is gone: forwarded.
    let tasks = ask(dns.addr, "tasks.web.", RecordType::A).await;
    assert_eq!(
        (tasks.metadata.response_code, tasks.answers.len()),
        (ResponseCode::NoError, 0)
    );
    assert_eq!(
        addrs(&ask(dns.addr, "big.", RecordType::A).await),
        [UPSTREAM_ANSWER]
    );
}

async fn tcp_exchange(stream: &mut TcpStream, bytes: &[u8]) -> Message {
    stream.write_u16(bytes.len() as u16).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut reply = vec![0; usize::from(len)];
    stream.read_exact(&mut reply).await.unwrap();
    Message::from_vec(&reply).unwrap()
}

#[tokio::test]
async fn tcp_gets_the_full_answer_that_udp_truncates() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let udp = ask(dns.addr, "big.", RecordType::A).await;
    assert!(udp.metadata.truncation);
    assert!(addrs(&udp).len() < 100);
    let mut stream = TcpStream::connect(dns.addr).await.unwrap();
    let tcp = tcp_exchange(&mut stream, &query("big.", RecordType::A)).await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(addrs(&tcp).len(), 100);
    // Several queries on one connection, forwarded ones too.
    let web = tcp_exchange(&mut stream, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&web), [WEB_VIP]);
    let ext = tcp_exchange(&mut stream, &query("example.com.", RecordType::A)).await;
    assert_eq!(addrs(&ext), [UPSTREAM_ANSWER]);
}

#[tokio::test]
async fn an_edns_client_gets_up_to_its_size() {
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let mut msg = Message::from_vec(&query("big.", RecordType::A)).unwrap();
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    msg.set_edns(edns);
    let reply = udp_exchange_from(SANDBOX, dns.addr, &msg.to_vec().unwrap()).await;
    assert!(reply.len() > 512 && reply.len() <= 1232, "{}", reply.len());
}

#[tokio::test]
async fn the_resolver_never_forwards_to_itself() {
    let dns = start(&[], ResolverConfig::default()).await;
    let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
    dns.resolver.set_upstreams([dns.addr, other]);
    assert_eq!(dns.resolver.upstreams(), [other]);
    dns.resolver.set_upstreams([dns.addr]);
    assert!(dns.resolver.upstreams().is_empty());
    let started = Instant::now();
    let reply = ask(dns.addr, "example.com.", RecordType::A).await;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "no upstream: SERVFAIL at once"
    );
}

#[tokio::test]
async fn serve_stops_when_told_and_frees_the_port() {
    let resolver = Resolver::new(ResolverConfig::default()).unwrap();
    resolver.update(table());
    let listener = resolver
        .bind("127.0.0.1:0".parse().unwrap(), "front")
        .await
        .unwrap();
    let addr = listener.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));
    assert_eq!(addrs(&ask(addr, "web.", RecordType::A).await), [WEB_VIP]);
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The same port binds again: the sockets are closed.
    resolver
        .serve(addr, "front".into(), async {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_flood_of_random_and_oversized_datagrams_does_not_stop_the_server() {
    use rand::{Rng, SeedableRng};
    let up = fake_upstream(false).await;
    let dns = start(&[up.addr], ResolverConfig::default()).await;
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..2000 {
        let len = rng.gen_range(0..1500);
        let mut datagram: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        if len >= 12 {
            datagram[2] &= 0x07; // mostly queries, so most reach the parser
        }
        sock.send_to(&datagram, dns.addr).await.unwrap();
    }
    // A name of 300 bytes in 60-byte labels: longer than DNS allows.
    let mut oversized = query("a.", RecordType::A);
    oversized.truncate(12);
    for _ in 0..5 {
        oversized.push(60);
        oversized.extend_from_slice(&[b'x'; 60]);
    }
    oversized.extend_from_slice(&[0, 0, 1, 0, 1]);
    let reply = udp_exchange_from(SANDBOX, dns.addr, &oversized).await;
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(
        addrs(&ask(dns.addr, "web.", RecordType::A).await),
        [WEB_VIP]
    );
    assert!(dns.resolver.stats().queries >= 2);
}

#[tokio::test]
async fn dropping_the_serve_future_also_frees_the_port() {
    let resolver = Resolver::new(ResolverConfig::default()).unwrap();
    resolver.update(table());
    let listener = resolver
        .bind("127.0.0.1:0".parse().unwrap(), "front")
        .await
        .unwrap();
    let addr = listener.local_addr();
    let serving = tokio::spawn(listener.serve(std::future::pending()));
    assert_eq!(addrs(&ask(addr, "web.", RecordType::A).await), [WEB_VIP]);
    serving.abort();
    let _ = serving.await;
    // The receive threads let go of the socket shortly after the wake-up datagram.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match resolver.bind(addr, "front").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("port still taken 2 s after the serve future was dropped: {e}"),
        }
    }
}
