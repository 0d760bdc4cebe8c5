//! This node's view of its peers, measured while a dashboard looks (the leader says so
//! in its answers to heartbeats; see `shoal_control::mesh`): a TCP handshake to every
//! other node's control port over the underlay (reachable, and the round trip), the
//! WireGuard handshake age and bytes of each peer of the encrypted data path, and the
//! data path's drops by reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_control::mesh::{MeshReport, PeerView};
use shoal_control::state::ClusterState;
use shoal_control::{Member, NodeId};
use shoal_dataplane::wg::engine::PeerStats;
use tokio_util::sync::CancellationToken;

use crate::overlay::Overlay;

/// How often the view is measured while wanted, at most.
const EVERY: Duration = Duration::from_secs(2);
/// Probes a node sends per second at most: with many peers, rounds are further apart.
const PROBES_PER_SECOND: u64 = 5;
/// A peer that does not complete a TCP handshake within this is unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The report from what was measured: `rtts` by node (`None`: no answer), WireGuard
/// peers matched to nodes by underlay address, and the drop counters that are not zero.
pub fn report(
    state: &ClusterState,
    me: NodeId,
    rtts: &BTreeMap<NodeId, Option<u64>>,
    wg: &[PeerStats],
    counters: &[(&'static str, u64)],
) -> MeshReport {
    let peers = state
        .nodes
        .values()
        .filter(|n| n.id != me)
        .map(|n| {
            let w = wg.iter().find(|p| p.endpoint.ip() == n.addr);
            PeerView {
                node: n.id,
                underlay_rtt_us: rtts.get(&n.id).copied().flatten(),
                handshake_age_s: w.and_then(|p| p.last_handshake).map(|d| d.as_secs()),
                rx_bytes: w.map_or(0, |p| p.rx_bytes),
                tx_bytes: w.map_or(0, |p| p.tx_bytes),
            }
        })
        .collect();
    let drops = counters
        .iter()
        .filter(|(k, v)| *v > 0 && !k.ends_with("datagrams"))
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    MeshReport { peers, drops }
}

/// The round trip of a TCP handshake to `addr` (µs), `None` when it fails or times out.
async fn handshake_rtt(addr: SocketAddr) -> Option<u64> {
    let start = Instant::now();
    match tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Some(start.elapsed().as_micros() as u64),
        _ => None,
    }
}

/// The time between two rounds of probes to `peers` nodes.
pub fn period(peers: usize) -> Duration {
    EVERY.max(Duration::from_millis(
        peers as u64 * 1000 / PROBES_PER_SECOND,
    ))
}

/// Measures and hands the report to `member` every [`period`] while the leader wants it.
pub async fn run(member: Arc<Member>, overlay: Arc<Overlay>, stop: CancellationToken) {
    let mut wait = EVERY;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !member.mesh_wanted() {
            continue;
        }
        let state = member.replica().state();
        let mut probes = tokio::task::JoinSet::new();
        for n in state.nodes.values().filter(|n| n.id != member.node_id) {
            let (id, addr) = (n.id, n.control_addr);
            probes.spawn(async move { (id, handshake_rtt(addr).await) });
        }
        let mut rtts = BTreeMap::new();
        while let Some(Ok((id, rtt))) = probes.join_next().await {
            rtts.insert(id, rtt);
        }
        let (wg, counters) = overlay.encrypted().peers().unwrap_or_default();
        member.set_mesh_report(report(&state, member.node_id, &rtts, &wg, &counters));
        wait = period(rtts.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_spread_out_with_many_peers() {
        assert_eq!(period(2), EVERY);
        assert_eq!(period(10), EVERY);
        assert_eq!(period(99), Duration::from_millis(19_800));
    }

    #[test]
    fn every_other_node_is_reported_with_its_wireguard_peer_matched_by_address() {
        let mut state = ClusterState::default();
        for id in 1..=3 {
            state
                .nodes
                .insert(NodeId(id), crate::dashboard::test_node(id));
        }
        let wg = vec![PeerStats {
            name: "n3".into(),
            endpoint: "198.18.0.3:51820".parse().unwrap(),
            public_key: String::new(),
            mesh_ip: "100.64.0.3".parse().unwrap(),
            keepalive: None,
            last_handshake: Some(Duration::from_secs(7)),
            rx_bytes: 5,
            tx_bytes: 6,
        }];
        let rtts = BTreeMap::from([(NodeId(2), Some(80)), (NodeId(3), None)]);
        let counters = [("rx_datagrams", 9), ("rx_invalid", 2), ("tx_no_route", 0)];
        let r = report(&state, NodeId(1), &rtts, &wg, &counters);
        assert_eq!(r.peers.len(), 2, "not itself");
        assert_eq!(r.peers[0].node, NodeId(2));
        assert_eq!(r.peers[0].underlay_rtt_us, Some(80));
        assert_eq!(r.peers[0].handshake_age_s, None, "no encrypted peer");
        assert_eq!(r.peers[1].underlay_rtt_us, None, "silent: unreachable");
        assert_eq!(
            (
                r.peers[1].handshake_age_s,
                r.peers[1].rx_bytes,
                r.peers[1].tx_bytes
            ),
            (Some(7), 5, 6)
        );
        assert_eq!(
            r.drops,
            BTreeMap::from([("rx_invalid".to_string(), 2)]),
            "drops only, and only those that happened"
        );
    }
}
