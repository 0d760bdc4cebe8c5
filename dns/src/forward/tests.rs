//! Unit tests of forwarding: the reply checks, the upstream filter, and the exchange
//! against small fake upstreams on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{rdata::A, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use super::*;

fn query(name: &str) -> (Vec<u8>, ForwardQuery) {
    let mut msg = Message::query();
    msg.metadata.id = 0x4242;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let bytes = msg.to_vec().unwrap();
    let fq = ForwardQuery {
        header: Header {
            metadata: msg.metadata,
            counts: Default::default(),
        },
        question_len: bytes.len() - HEADER_LEN,
    };
    (bytes, fq)
}

/// A reply to `query` (its ID and question) with `n` A records.
fn reply_to(query: &[u8], n: u8) -> Vec<u8> {
    let q = Message::from_vec(query).unwrap();
    let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    r.add_query(q.queries[0].clone());
    for i in 0..n {
        let name = q.queries[0].name().clone();
        r.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, i))));
    }
    r.to_vec().unwrap()
}

#[test]
fn a_matching_reply_is_accepted_with_the_clients_id() {
    let (bytes, fq) = query("example.com.");
    let uq = UpstreamQuery::new(&bytes, &fq, 7);
    assert_eq!(&uq.bytes()[..2], &7u16.to_be_bytes());
    let mut reply = reply_to(uq.bytes(), 1);
    assert!(uq.accept(&mut reply));
    assert_eq!(Message::from_vec(&reply).unwrap().metadata.id, 0x4242);
}

#[test]
fn a_reply_with_another_id_or_question_or_no_qr_is_ignored() {
    let (bytes, fq) = query("example.com.");
    let uq = UpstreamQuery::new(&bytes, &fq, 7);
    let mut wrong_id = reply_to(uq.bytes(), 1);
    wrong_id[1] ^= 1;
    assert!(!uq.accept(&mut wrong_id));
    let (other, _) = query("example.org.");
    let mut other = reply_to(&other, 1);
    other[..2].copy_from_slice(&7u16.to_be_bytes());
    assert!(!uq.accept(&mut other));
    let mut not_response = uq.bytes().to_vec();
    assert!(!uq.accept(&mut not_response));
    assert!(!uq.accept(&mut [0, 7, 0x80]));
}

#[test]
fn a_reply_in_another_letter_case_is_accepted() {
    let (bytes, fq) = query("example.com.");
    let uq = UpstreamQuery::new(&bytes, &fq, 7);
    let (upper, _) = query("EXAMPLE.com.");
    let mut reply = reply_to(&upper, 1);
    reply[..2].copy_from_slice(&7u16.to_be_bytes());
    assert!(uq.accept(&mut reply));
}

#[test]
fn an_error_reply_without_question_is_accepted_but_not_an_empty_success() {
    let (bytes, fq) = query("example.com.");
    let uq = UpstreamQuery::new(&bytes, &fq, 7);
    let refused = Message::error_msg(7, OpCode::Query, ResponseCode::Refused);
    assert!(uq.accept(&mut refused.to_vec().unwrap()));
    let empty_ok = Message::new(7, MessageType::Response, OpCode::Query);
    assert!(!uq.accept(&mut empty_ok.to_vec().unwrap()));
}

#[test]
fn upstreams_never_include_ourselves() {
    let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
    let b: SocketAddr = "192.0.2.2:53".parse().unwrap();
    let lo: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let lo_other: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let zero: SocketAddr = "0.0.0.0:53".parse().unwrap();
    let configured = [a, b, a, lo, lo_other, zero, "192.0.2.3:0".parse().unwrap()];
    assert_eq!(effective_upstreams(&configured, &[b]), [a, lo, lo_other]);
    // A wildcard listener on :53 is every local address on :53.
    assert_eq!(effective_upstreams(&configured, &[zero]), [lo_other]);
}

/// A UDP upstream on loopback that answers every query with the datagrams `reply(query)`.
async fn fake_udp_upstream(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            for r in reply(&buf[..n]) {
                let _ = sock.send_to(&r, peer).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn a_silent_upstream_is_skipped_for_the_next() {
    let silent = fake_udp_upstream(|_| vec![]).await;
    let good = fake_udp_upstream(|q| vec![reply_to(q, 1)]).await;
    let (bytes, fq) = query("example.com.");
    let started = Instant::now();
    let budget = Duration::from_millis(400);
    let reply = forward(&[silent, good], &bytes, &fq, budget, Transport::Udp)
        .await
        .unwrap();
    assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 1);
    let took = started.elapsed();
    assert!(took >= budget / 2 && took < budget, "{took:?}");
}

#[tokio::test]
async fn a_spoofed_reply_is_ignored_and_the_real_one_relayed() {
    let upstream = fake_udp_upstream(|q| {
        let mut spoof = reply_to(q, 9);
        spoof[0] ^= 0xFF;
        vec![spoof, reply_to(q, 1)]
    })
    .await;
    let (bytes, fq) = query("example.com.");
    let budget = Duration::from_secs(2);
    let reply = forward(&[upstream], &bytes, &fq, budget, Transport::Udp)
        .await
        .unwrap();
    let msg = Message::from_vec(&reply).unwrap();
    assert_eq!((msg.metadata.id, msg.answers.len()), (0x4242, 1));
}

#[tokio::test]
async fn no_upstream_answering_is_a_timeout_within_the_budget() {
    let a = fake_udp_upstream(|_| vec![]).await;
    let b = fake_udp_upstream(|_| vec![]).await;
    let (bytes, fq) = query("example.com.");
    let started = Instant::now();
    let budget = Duration::from_millis(300);
    let err = forward(&[a, b], &bytes, &fq, budget, Transport::Udp)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UpstreamTimeout { tried: 2, .. }),
        "{err}"
    );
    assert!(err.try_next_upstream());
    assert!(started.elapsed() < budget + Duration::from_millis(100));
    let none = forward(&[], &bytes, &fq, budget, Transport::Udp)
        .await
        .unwrap_err();
    assert!(matches!(none, Error::NoUpstreams));
}

#[tokio::test]
async fn a_truncated_reply_is_fetched_again_over_tcp_for_a_tcp_client() {
    // UDP and TCP on the same loopback port, as a real resolver has.
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let udp = UdpSocket::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0; 65535];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            let mut r = reply_to(&buf[..n], 0);
            r[2] |= TC;
            let _ = udp.send_to(&r, peer).await;
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            let len = s.read_u16().await.unwrap();
            let mut q = vec![0; usize::from(len)];
            s.read_exact(&mut q).await.unwrap();
            let r = reply_to(&q, 50);
            s.write_u16(r.len() as u16).await.unwrap();
            s.write_all(&r).await.unwrap();
        }
    });
    let (bytes, fq) = query("example.com.");
    let budget = Duration::from_secs(2);
    let udp_reply = forward(&[addr], &bytes, &fq, budget, Transport::Udp)
        .await
        .unwrap();
    assert!(is_truncated(&udp_reply));
    let tcp_reply = forward(&[addr], &bytes, &fq, budget, Transport::Tcp)
        .await
        .unwrap();
    let msg = Message::from_vec(&tcp_reply).unwrap();
    assert_eq!((msg.metadata.id, msg.answers.len()), (0x4242, 50));
}

#[tokio::test]
async fn a_refusing_port_moves_on_at_once() {
    // Bind then drop: nothing listens there, so the kernel answers "port unreachable".
    let closed = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let good = fake_udp_upstream(|q| vec![reply_to(q, 1)]).await;
    let (bytes, fq) = query("example.com.");
    let started = Instant::now();
    let budget = Duration::from_secs(2);
    let reply = forward(&[closed, good], &bytes, &fq, budget, Transport::Udp).await;
    assert!(reply.is_ok());
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}
