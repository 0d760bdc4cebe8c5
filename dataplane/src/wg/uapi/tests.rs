use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::wg::keys::KeyPair;

fn peer(key: &str, handshake: Option<Duration>) -> PeerStats {
    PeerStats {
        name: "n2".into(),
        endpoint: SocketAddr::from((Ipv4Addr::new(198, 18, 0, 2), 51820)),
        public_key: key.into(),
        mesh_ip: Ipv4Addr::new(198, 18, 0, 2),
        keepalive: Some(25),
        last_handshake: handshake,
        rx_bytes: 1_234,
        tx_bytes: 5_678,
    }
}

/// A fixed key: 32 bytes 0x01..0x20, base64.
const KEY_B64: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const KEY_HEX: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

#[test]
fn get_lists_every_peer_in_uapi_text_without_private_key() {
    let now = UNIX_EPOCH + Duration::new(1_700_000_010, 750_000_000);
    let peers = [peer(KEY_B64, Some(Duration::from_millis(2_500))), {
        let mut p = peer(&KeyPair::generate().public_base64(), None);
        p.endpoint = "[fd00:5ea1::3]:51821".parse().unwrap();
        p.mesh_ip = Ipv4Addr::new(198, 18, 0, 3);
        p.keepalive = None;
        p
    }];
    let text = get_response(
        &Device {
            listen_port: 51820,
            fwmark: None,
            peers: &peers,
        },
        now,
    );
    let expected_first = format!(
        "listen_port=51820\n\
         public_key={KEY_HEX}\n\
         protocol_version=1\n\
         endpoint=198.18.0.2:51820\n\
         last_handshake_time_sec=1700000008\n\
         last_handshake_time_nsec=250000000\n\
         tx_bytes=5678\n\
         rx_bytes=1234\n\
         persistent_keepalive_interval=25\n\
         allowed_ip=198.18.0.2/32\n"
    );
    assert!(text.starts_with(&expected_first), "{text}");
    assert!(text.ends_with(
        "endpoint=[fd00:5ea1::3]:51821\n\
         last_handshake_time_sec=0\n\
         last_handshake_time_nsec=0\n\
         tx_bytes=5678\n\
         rx_bytes=1234\n\
         persistent_keepalive_interval=0\n\
         allowed_ip=198.18.0.3/32\n\
         errno=0\n\n"
    ));
    assert_eq!(text.matches("public_key=").count(), 2);
    assert!(!text.contains("private_key"));
    assert!(!text.contains("fwmark"));
}

#[test]
fn get_sends_a_fwmark_when_set_and_skips_undecodable_keys() {
    let peers = [peer("not a key", None)];
    let text = get_response(
        &Device {
            listen_port: 1,
            fwmark: Some(0x42),
            peers: &peers,
        },
        SystemTime::now(),
    );
    assert_eq!(text, "listen_port=1\nfwmark=66\nerrno=0\n\n");
}

#[test]
fn a_handshake_older_than_the_epoch_reads_as_never() {
    let now = UNIX_EPOCH + Duration::from_secs(5);
    assert_eq!(handshake_time(Some(Duration::from_secs(10)), now), (0, 0));
    assert_eq!(handshake_time(None, now), (0, 0));
    assert_eq!(handshake_time(Some(Duration::ZERO), now), (5, 0));
}

#[test]
fn get_is_answered_after_its_blank_line_and_the_conversation_goes_on() {
    let mut c = Conversation::default();
    assert_eq!(c.line(b"get=1"), Action::Read);
    assert_eq!(c.line(b""), Action::Get);
    assert_eq!(c.line(b"get=1"), Action::Read);
    assert_eq!(c.line(b""), Action::Get);
}

fn refusal(a: Action) -> Refusal {
    match a {
        Action::Refuse(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn set_is_refused_with_eperm_after_the_whole_request() {
    let mut c = Conversation::default();
    assert_eq!(c.line(b"set=1"), Action::Read);
    assert_eq!(c.line(b"private_key=00"), Action::Read);
    assert_eq!(c.line(b"listen_port=1"), Action::Read);
    let r = refusal(c.line(b""));
    assert_eq!((r.errno, r.close), (EPERM, false));
    assert_eq!(r.reply(), "errno=-1\n\n");
    // The connection stays usable, as with wireguard-go.
    assert_eq!(c.line(b"get=1"), Action::Read);
    assert_eq!(c.line(b""), Action::Get);
}

#[test]
fn a_set_with_unknown_keys_is_refused_as_invalid() {
    let mut c = Conversation::default();
    c.line(b"set=1");
    assert_eq!(c.line(b"colour=blue"), Action::Read);
    assert_eq!(c.line(b"no equals sign"), Action::Read);
    let r = refusal(c.line(b""));
    assert_eq!((r.errno, r.close), (EINVAL, false));
    assert_eq!(r.reply(), "errno=-22\n\n");
}

#[test]
fn junk_unknown_operations_and_long_lines_close_the_connection() {
    let r = refusal(Conversation::default().line(b"GET / HTTP/1.1"));
    assert_eq!((r.errno, r.close), (EPROTO, true));
    assert!(r.reason.contains("unknown operation"), "{}", r.reason);
    let r = refusal(Conversation::default().line(&[0xff, 0xfe]));
    assert_eq!((r.errno, r.close), (EPROTO, true));
    let mut c = Conversation::default();
    c.line(b"get=1");
    let r = refusal(c.line(b"extra"));
    assert_eq!((r.errno, r.close), (EINVAL, true));
    let r = refusal(Conversation::default().too_long());
    assert_eq!((r.errno, r.close), (EINVAL, true));
    let long = "x".repeat(500);
    let r = refusal(Conversation::default().line(long.as_bytes()));
    assert!(
        r.reason.len() < 120,
        "the log line is clipped: {}",
        r.reason
    );
}

#[test]
fn an_endless_set_is_cut_off() {
    let mut c = Conversation::default();
    c.line(b"set=1");
    let mut last = Action::Read;
    for _ in 0..MAX_SET_LINES {
        last = c.line(b"allowed_ip=10.0.0.0/8");
        if last != Action::Read {
            break;
        }
    }
    let r = refusal(last);
    assert_eq!((r.errno, r.close), (EINVAL, true));
}
