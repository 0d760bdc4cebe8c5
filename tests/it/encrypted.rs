//! Encrypted networks on real labs: data only inside WireGuard on the underlay, recovery
//! after an agent is killed, removed nodes refused, key rotation under a running stream,
//! and junk on the WireGuard port; `wg show` on it in [`wg_show`].

#[path = "encrypted/wg_show.rs"]
mod wg_show;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use serde_json::Value;
use shoal_dataplane::wg::keys::{public_from_base64, KeyPair};
use shoal_tests::net::at;
use shoal_tests::{exec_in, ip_of, require_root, spawn_in, wait_until, Capture, Lab, Sandbox};

const BIN: &str = env!("CARGO_BIN_EXE_shoal");
const WG_PORT: u16 = 51820;
const MARKER: &[u8] = b"SHOAL-CANARY-7f3a9c-THIS-MUST-NEVER-BE-SEEN-ON-THE-WIRE\n";

/// Attaches `sb` on `host` to `network`, waiting for the node's key to be announced;
/// returns the sandbox's address.
fn attach(lab: &Lab, host: &str, network: &str, sb: &Sandbox) -> String {
    let ep = wait_until(
        &format!("{} to attach on {host}", sb.ns),
        Duration::from_secs(15),
        || {
            let out = lab.shoal(
                host,
                &["attach", "--network", network, &sb.ns, "--format", "json"],
            );
            if out.ok() {
                serde_json::from_str::<Value>(&out.stdout).map_err(|e| e.to_string())
            } else {
                Err(out.stderr)
            }
        },
    );
    ip_of(&ep)
}

/// An encrypted network `sec` with one sandbox on each of the first `n` nodes.
fn encrypted_lab(nodes: usize) -> (Lab, Vec<Sandbox>, Vec<String>) {
    let lab = Lab::up(BIN, nodes, 1);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--opt",
            "encrypted",
            "sec",
        ],
    );
    let sbs: Vec<Sandbox> = (1..=nodes)
        .map(|i| lab.sandbox(&format!("sb{i}")))
        .collect();
    let ips = sbs
        .iter()
        .enumerate()
        .map(|(i, sb)| attach(&lab, &format!("n{}", i + 1), "sec", sb))
        .collect();
    (lab, sbs, ips)
}

fn reaches(from: &Sandbox, ip: &str, within: Duration) {
    wait_until(&format!("{} to reach {ip}", from.ns), within, || {
        if from.ping(ip, 56) {
            Ok(())
        } else {
            Err("no answer".into())
        }
    });
}

/// The WireGuard section of `host`'s status: peer rows and drop counters.
/// Peer rows (name, description) and drop counters (kind, count) of a node.
type WireguardStatus = (Vec<(String, String)>, Vec<(String, u64)>);

fn wireguard(lab: &Lab, host: &str) -> WireguardStatus {
    let status = lab.json(host, &["status"]);
    let section = status["sections"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["title"].as_str().unwrap_or("").starts_with("WireGuard"))
        })
        .cloned()
        .unwrap_or(Value::Null);
    let mut peers = Vec::new();
    let mut drops = Vec::new();
    for row in section["rows"].as_array().cloned().unwrap_or_default() {
        let (k, v) = (
            row[0].as_str().unwrap_or("").to_string(),
            row[1].as_str().unwrap_or("").to_string(),
        );
        if k == "dropped" {
            drops = v
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, n)| (k.to_string(), n.parse().unwrap_or(0)))
                .collect();
        } else {
            peers.push((k, v));
        }
    }
    (peers, drops)
}

fn dropped(lab: &Lab, host: &str, kind: &str) -> u64 {
    wireguard(lab, host)
        .1
        .iter()
        .find(|(k, _)| k == kind)
        .map(|(_, n)| *n)
        .unwrap_or(0)
}

fn public_key(lab: &Lab, host: &str) -> String {
    lab.json("n1", &["node", "inspect", host])["wireguard"]["public_key"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// UDP on the lab's underlay bridge.
fn underlay_capture(lab: &Lab) -> Capture {
    Capture::start(&format!("shl-{}-ul", lab.name), "br0", &["udp"])
}

/// How many packets of the capture match the tshark display filter.
fn tshark_count(file: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(file)
        .args(["-d", &format!("udp.port=={WG_PORT},wg"), "-Y", filter])
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .expect("tshark (install it: apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Sends the marker, many times over, from `sb` to a sink at `to`.
fn send_marker(from: &Sandbox, to_sb: &Sandbox, to: SocketAddr) {
    let sink = to_sb.sink(to);
    spawn_in(&from.ns, move || {
        let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(5)).expect("connect");
        for _ in 0..2000 {
            conn.write_all(MARKER).unwrap();
        }
    })
    .join()
    .unwrap();
    let (bytes, got, _) = sink.join().unwrap();
    assert_eq!(bytes, 2000 * MARKER.len() as u64);
    assert_eq!(
        got,
        shoal_tests::sha256_hex(&MARKER.repeat(2000)),
        "the marker arrived intact"
    );
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn encrypted_traffic_crosses_the_underlay_only_inside_wireguard() {
    require_root("encrypted_traffic_crosses_the_underlay_only_inside_wireguard");
    let (lab, sbs, ips) = encrypted_lab(3);
    lab.ok("n1", &["network", "create", "--attachable", "web"]);
    let plain = [
        attach(&lab, "n1", "web", &sbs[0]),
        attach(&lab, "n2", "web", &sbs[1]),
    ];
    for (i, sb) in sbs.iter().enumerate() {
        for ip in ips.iter().skip(i + 1) {
            reaches(sb, ip, Duration::from_secs(5));
        }
    }

    // 100 MB across the encrypted network, intact.
    let sink = sbs[2].sink(at(&ips[2], 5001));
    let sent = sbs[0]
        .send(at(&ips[2], 5001), 100 << 20, None)
        .join()
        .unwrap();
    let (bytes, got, _) = sink.join().unwrap();
    assert_eq!((bytes, got), (100 << 20, sent));

    // On the underlay: WireGuard only, and the marker nowhere.
    let mut capture = underlay_capture(&lab);
    send_marker(&sbs[0], &sbs[1], at(&ips[1], 5002));
    let pcap = capture.stop();
    let file = capture.path();
    assert!(
        !contains(&pcap, MARKER),
        "the marker crossed the underlay in the clear"
    );
    let wg = tshark_count(file, "wg");
    assert!(wg > 20, "expected WireGuard packets, saw {wg}");
    assert_eq!(
        tshark_count(file, "wg.type == 4"),
        tshark_count(file, &format!("udp.port == {WG_PORT} && wg.type == 4"))
    );
    assert_eq!(
        tshark_count(file, "udp && !wg"),
        0,
        "non-WireGuard UDP on the underlay"
    );
    assert_eq!(tshark_count(file, "vxlan"), 0);

    // The same transfer on a plain network is VXLAN, and the marker shows.
    let mut capture = underlay_capture(&lab);
    send_marker(&sbs[0], &sbs[1], at(&plain[1], 5003));
    let pcap = capture.stop();
    let file = capture.path();
    assert!(contains(&pcap, MARKER));
    assert!(tshark_count(file, "vxlan") > 20);
    assert_eq!(tshark_count(file, "wg.type == 4"), 0);

    // Cleartext VXLAN for the encrypted network's VNI is refused by the nodes.
    let vni = lab.json("n1", &["network", "inspect", "sec"])["vni"]
        .as_u64()
        .unwrap();
    let mut frame = vec![0x08, 0, 0, 0];
    frame.extend_from_slice(&((vni as u32) << 8).to_be_bytes());
    frame.extend_from_slice(&[0xff; 14]);
    frame.extend_from_slice(MARKER);
    let mut capture = underlay_capture(&lab);
    let client = lab.host_ns("client");
    let to = at(&lab.ip("n1"), 4789);
    spawn_in(&client, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..5 {
            s.send_to(&frame, to).unwrap();
        }
    })
    .join()
    .unwrap();
    capture.stop();
    let file = capture.path();
    // Only the five injected frames: nothing was forwarded or answered.
    assert_eq!(tshark_count(file, "vxlan"), 5);
    let nft = exec_in(&lab.host_ns("n1"), &["nft", "list", "table", "ip", "shoal"]).stdout;
    let rule = nft
        .lines()
        .find(|l| l.contains("cleartext VXLAN refused"))
        .unwrap_or_else(|| panic!("no drop rule for the encrypted VNI: {nft}"));
    assert!(rule.contains("packets 5 "), "{rule}");
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_restarted_agent_gets_traffic_back_within_five_seconds() {
    require_root("a_restarted_agent_gets_traffic_back_within_five_seconds");
    let (lab, sbs, ips) = encrypted_lab(2);
    reaches(&sbs[0], &ips[1], Duration::from_secs(5));
    let (peers, _) = wireguard(&lab, "n1");
    assert_eq!(peers.len(), 1, "{peers:?}");
    assert!(peers[0].1.contains("latest handshake"), "{peers:?}");

    lab.kill("n2", "KILL");
    lab.start("n2");
    let restarted = Instant::now();
    reaches(&sbs[0], &ips[1], Duration::from_secs(5));
    reaches(&sbs[1], &ips[0], Duration::from_secs(1));
    assert!(restarted.elapsed() < Duration::from_secs(5));
    let (peers, _) = wireguard(&lab, "n2");
    assert!(peers[0].1.contains("latest handshake"), "{peers:?}");
}

/// Someone speaking WireGuard from `bind` inside `ns` with a node's stored key.
struct Impostor {
    socket: UdpSocket,
    tunn: Tunn,
}

impl Impostor {
    fn new(lab: &Lab, as_host: &str, towards: &str) -> Impostor {
        let stored: Value = serde_json::from_slice(
            &std::fs::read(format!(
                "/var/lib/shoal/labs/{}/{as_host}/wireguard.json",
                lab.name
            ))
            .unwrap(),
        )
        .unwrap();
        let key = KeyPair::from_private_base64(stored["private_key"].as_str().unwrap()).unwrap();
        let theirs = public_from_base64(&public_key(lab, towards)).unwrap();
        let bind = at(&lab.ip(as_host), WG_PORT);
        // The killed agent's socket closes once the kernel has reaped it.
        let ns = lab.host_ns(as_host);
        let socket = wait_until(
            "the WireGuard port to be free",
            Duration::from_secs(5),
            || {
                spawn_in(&ns, move || UdpSocket::bind(bind))
                    .join()
                    .unwrap()
                    .map_err(|e| e.to_string())
            },
        );
        socket
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        socket.connect(at(&lab.ip(towards), WG_PORT)).unwrap();
        Impostor {
            socket,
            tunn: Tunn::new(key.private, theirs, None, None, 4242, None),
        }
    }

    /// Sends a handshake initiation; whether a response came back.
    fn handshake(&mut self) -> bool {
        let mut buf = [0u8; 256];
        let TunnResult::WriteToNetwork(init) =
            self.tunn.format_handshake_initiation(&mut buf, true)
        else {
            panic!("no initiation");
        };
        self.socket.send(init).unwrap();
        let mut got = [0u8; 256];
        let Ok(n) = self.socket.recv(&mut got) else {
            return false;
        };
        let mut out = [0u8; 256];
        match self.tunn.decapsulate(None, &got[..n], &mut out) {
            TunnResult::WriteToNetwork(keepalive) => {
                self.socket.send(keepalive).unwrap();
                true
            }
            _ => false,
        }
    }

    /// Seals a UDP packet from `src` to `dst` (not VXLAN) and returns the datagram.
    fn seal(&mut self, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut ip = vec![0u8; 48];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&48u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        ip[22..24].copy_from_slice(&9u16.to_be_bytes());
        let mut out = vec![0u8; 256];
        match self.tunn.encapsulate(&ip, &mut out) {
            TunnResult::WriteToNetwork(d) => d.to_vec(),
            _ => panic!("no session"),
        }
    }
}

fn mesh_ip(lab: &Lab, host: &str) -> [u8; 4] {
    let ip: std::net::Ipv4Addr = lab.json("n1", &["node", "inspect", host])["wireguard"]["mesh_ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    ip.octets()
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn a_removed_nodes_key_is_refused() {
    require_root("a_removed_nodes_key_is_refused");
    let (lab, sbs, ips) = encrypted_lab(3);
    reaches(&sbs[2], &ips[0], Duration::from_secs(5));

    // With n3's agent gone, its key still opens a session with n1...
    lab.kill("n3", "KILL");
    let mut n3 = Impostor::new(&lab, "n3", "n1");
    assert!(n3.handshake(), "n1 refused n3 while n3 is a member");

    // ...until n3 is removed: then n1 and n2 drop it and ignore its handshakes.
    lab.ok("n1", &["node", "rm", "--force", "n3"]);
    for host in ["n1", "n2"] {
        wait_until(
            &format!("{host} to drop n3"),
            Duration::from_secs(5),
            || {
                let (peers, _) = wireguard(&lab, host);
                if peers.iter().any(|(name, _)| name == "n3") {
                    Err(format!("{peers:?}"))
                } else {
                    Ok(())
                }
            },
        );
    }
    let before = dropped(&lab, "n1", "rx_unknown_peer");
    assert!(!n3.handshake(), "n1 accepted a removed node's key");
    assert!(dropped(&lab, "n1", "rx_unknown_peer") > before);
    reaches(&sbs[0], &ips[1], Duration::from_secs(2));
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn key_rotation_does_not_break_a_running_stream() {
    require_root("key_rotation_does_not_break_a_running_stream");
    let (lab, sbs, ips) = encrypted_lab(2);
    reaches(&sbs[0], &ips[1], Duration::from_secs(5));
    let keys = [public_key(&lab, "n1"), public_key(&lab, "n2")];

    let sink = sbs[1].sink(at(&ips[1], 5001));
    let sender = sbs[0].send(at(&ips[1], 5001), 24 << 20, Some(4 << 20));
    sink.wait_for_more(4 << 20, Duration::from_secs(10));
    lab.ok("n1", &["cluster", "rotate-keys"]);
    wait_until("both keys to change", Duration::from_secs(10), || {
        let now = [public_key(&lab, "n1"), public_key(&lab, "n2")];
        if now[0] != keys[0] && now[1] != keys[1] {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    let sent = sender.join().unwrap();
    let (bytes, got, _) = sink.join().unwrap();
    assert_eq!((bytes, got), (24 << 20, sent));
    reaches(&sbs[1], &ips[0], Duration::from_secs(2));
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn junk_on_the_wireguard_port_is_dropped_and_counted() {
    require_root("junk_on_the_wireguard_port_is_dropped_and_counted");
    let (lab, sbs, ips) = encrypted_lab(2);
    reaches(&sbs[0], &ips[1], Duration::from_secs(5));
    let count = |lab: &Lab| {
        let (_, drops) = wireguard(lab, "n1");
        drops.iter().map(|(_, n)| *n).sum::<u64>()
    };
    let before = count(&lab);

    // Garbage and truncated messages of every type, from a stranger.
    let client = lab.host_ns("client");
    let to = at(&lab.ip("n1"), WG_PORT);
    let sent = spawn_in(&client, move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut sent = 0u64;
        for i in 0..200usize {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = [0, 1, 3, 4, 8, 31, 32, 92, 147, 148, 1500][i % 11];
            let mut d: Vec<u8> = (0..len).map(|j| (state >> (j % 8 * 8)) as u8).collect();
            if let Some(first) = d.first_mut() {
                *first = (i % 6) as u8;
            }
            s.send_to(&d, to).unwrap();
            sent += 1;
        }
        sent
    })
    .join()
    .unwrap();
    wait_until("junk to be counted", Duration::from_secs(3), || {
        let now = count(&lab);
        // Empty datagrams are not delivered as datagrams by every path; allow for them.
        if now >= before + sent - sent / 11 {
            Ok(())
        } else {
            Err(format!("{} counted of {sent}", now - before))
        }
    });

    // A real session from n2's key and address: a packet that is not VXLAN is dropped,
    // and its replay is refused.
    lab.kill("n2", "KILL");
    let mut n2 = Impostor::new(&lab, "n2", "n1");
    assert!(n2.handshake());
    let datagram = n2.seal(mesh_ip(&lab, "n2"), mesh_ip(&lab, "n1"));
    let (not_ours, invalid) = (
        dropped(&lab, "n1", "rx_not_ours"),
        dropped(&lab, "n1", "rx_invalid"),
    );
    n2.socket.send(&datagram).unwrap();
    wait_until("the packet to be dropped", Duration::from_secs(2), || {
        (dropped(&lab, "n1", "rx_not_ours") > not_ours)
            .then_some(())
            .ok_or_else(|| "not counted".to_string())
    });
    n2.socket.send(&datagram).unwrap();
    wait_until("the replay to be refused", Duration::from_secs(2), || {
        (dropped(&lab, "n1", "rx_invalid") > invalid)
            .then_some(())
            .ok_or_else(|| "not counted".to_string())
    });
    drop(n2);

    // The agents carry on.
    lab.start("n2");
    reaches(&sbs[0], &ips[1], Duration::from_secs(5));
}
