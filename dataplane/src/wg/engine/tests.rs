//! Unit tests of the receive path: real sessions between two in-memory tunnels.

use super::rx::peer_for;
use super::*;
use crate::wg::udp::MSG_BUF;
use proptest::prelude::*;

const THEIRS: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    Ipv4Addr::new(198, 18, 0, 2),
    51820,
));

/// Our tunnel to them and theirs to us, with a completed handshake.
fn pair() -> (Arc<Peer>, Tunn) {
    let (ours, theirs) = (KeyPair::generate(), KeyPair::generate());
    let mut a = Tunn::new(ours.private.clone(), theirs.public, None, None, 7, None);
    let mut b = Tunn::new(theirs.private.clone(), ours.public, None, None, 9, None);
    let (mut m1, mut m2, mut m3) = ([0u8; 256], [0u8; 256], [0u8; 256]);
    let TunnResult::WriteToNetwork(init) = a.format_handshake_initiation(&mut m1, false) else {
        panic!("no initiation");
    };
    let TunnResult::WriteToNetwork(resp) = b.decapsulate(None, init, &mut m2) else {
        panic!("no response");
    };
    // The response completes our side; the keepalive we answer with completes theirs.
    if let TunnResult::WriteToNetwork(keepalive) = a.decapsulate(None, resp, &mut m3) {
        let _ = b.decapsulate(None, keepalive, &mut m2);
    }
    let peer = Arc::new(Peer {
        name: "n2".into(),
        public_key: theirs.public_base64(),
        endpoint: THEIRS,
        mesh_ip: Ipv4Addr::new(100, 96, 0, 2),
        index: 7,
        tunn: Mutex::new(a),
        rx_bytes: AtomicU64::new(0),
        tx_bytes: AtomicU64::new(0),
    });
    (peer, b)
}

fn tables(peer: &Arc<Peer>) -> Tables {
    Tables {
        mesh_ip: Ipv4Addr::new(100, 96, 0, 1),
        vxlan_port: 4789,
        by_index: HashMap::from([(peer.index, peer.clone())]),
        by_endpoint: HashMap::from([(peer.endpoint, peer.clone())]),
        by_mesh: HashMap::from([(peer.mesh_ip, peer.clone())]),
        nets: HashMap::new(),
    }
}

/// An IPv4/UDP packet from their mesh address, sealed by their tunnel.
fn sealed(b: &mut Tunn) -> Vec<u8> {
    let mut ip = vec![0u8; 60];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&60u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[100, 96, 0, 2]);
    ip[16..20].copy_from_slice(&[100, 96, 0, 1]);
    let mut out = vec![0u8; 256];
    match b.encapsulate(&ip, &mut out) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        _ => panic!("no session"),
    }
}

fn opens(peer: &Peer, datagram: &[u8]) -> bool {
    let mut plain = vec![0u8; MSG_BUF];
    let mut tunn = peer.tunn.lock().unwrap();
    matches!(
        tunn.decapsulate(None, datagram, &mut plain),
        TunnResult::WriteToTunnelV4(..) | TunnResult::WriteToTunnelV6(..)
    )
}

#[test]
fn a_sealed_packet_opens_once_and_a_replay_does_not() {
    let (peer, mut b) = pair();
    let t = tables(&peer);
    let d = sealed(&mut b);
    assert!(peer_for(&t, &d, THEIRS).is_some());
    assert!(opens(&peer, &d));
    assert!(!opens(&peer, &d), "a replayed datagram was accepted");
}

#[test]
fn handshakes_from_unknown_endpoints_find_no_peer() {
    let (peer, _) = pair();
    let t = tables(&peer);
    let stranger: SocketAddr = "[fd00:5ea1::9]:51820".parse().unwrap();
    let mut init = vec![0u8; 148];
    init[0] = HANDSHAKE_INIT;
    assert!(peer_for(&t, &init, stranger).is_none());
    assert!(peer_for(&t, &init, THEIRS).is_some());
    assert!(peer_for(&t, &[], THEIRS).is_none());
    assert!(peer_for(&t, &[DATA, 0, 0], THEIRS).is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn garbage_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..400), kind in 0u8..6) {
        let (peer, _) = pair();
        let t = tables(&peer);
        let mut d = bytes;
        if let Some(first) = d.first_mut() {
            *first = kind;
        }
        if let Some(p) = peer_for(&t, &d, THEIRS) {
            prop_assert!(!opens(p, &d));
        }
    }

    #[test]
    fn damaged_or_cut_packets_never_open(at in 0usize..120, flip in 1u8..=255, cut in 0usize..120) {
        let (peer, mut b) = pair();
        let t = tables(&peer);
        let good = sealed(&mut b);
        let mut flipped = good.clone();
        let i = at % flipped.len();
        flipped[i] ^= flip;
        let truncated = &good[..cut.min(good.len() - 1)];
        for d in [&flipped[..], truncated] {
            if let Some(p) = peer_for(&t, d, THEIRS) {
                prop_assert!(!opens(p, d));
            }
        }
        prop_assert!(opens(&peer, &good));
    }
}
