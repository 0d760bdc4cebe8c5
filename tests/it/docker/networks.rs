//! Containers on shoal networks: across hosts, isolated, encrypted.

use super::*;

/// docs: "Use with Docker" (README) and Weave's net-plugin workflow: containers on a
/// shoal network on two hosts reach each other by address, name and alias, move data
/// intact, and reach a shoal sandbox on the same network.
#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn docker_containers_on_a_shoal_network_reach_each_other_across_hosts() {
    need_docker("docker_containers_on_a_shoal_network_reach_each_other_across_hosts");
    let lab = docker_lab(2, &[]);
    shoal_network(&lab, "web", &[], &["n2"]);
    run(&lab, "n1", "b1", "web", &["--network-alias", "bee"]);
    run(&lab, "n2", "b2", "web", &[]);
    let b1 = ip_on(&lab, "n1", "b1", "web");
    let b2 = ip_on(&lab, "n2", "b2", "web");
    assert_ne!(b1, b2);
    for target in [b1.to_string(), "b1".into(), "bee".into()] {
        pings(&lab, "n2", "b2", &target);
    }
    let looked_up = docker_ok(&lab, "n2", &["exec", "b2", "nslookup", "bee"]);
    assert!(looked_up.contains(&b1.to_string()), "{looked_up}");
    // A shoal sandbox on the same network, by name.
    let sb = lab.sandbox("sbx");
    lab.ok(
        "n1",
        &["attach", "--network", "web", "--name", "sbx", &sb.ns],
    );
    pings(&lab, "n2", "b2", "sbx");
    // 32 MB across hosts, checksummed.
    let sink = netns_of(&lab, "n1", "b1").sink(SocketAddr::new(b1.into(), 5000));
    let sent = netns_of(&lab, "n2", "b2").send(SocketAddr::new(b1.into(), 5000), 32 << 20, None);
    let sent = sent.join().unwrap();
    let (bytes, got, peer) = sink.join().unwrap();
    assert_eq!((bytes, got), (32 << 20, sent));
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(b2),
        "no NAT between containers"
    );
    // Docker's view matches shoal's.
    let net = lab.json("n1", &["network", "inspect", "web"]);
    let names: Vec<&str> = net["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    for n in ["b1", "b2", "sbx"] {
        assert!(names.contains(&n), "{names:?}");
    }
}

/// docs: network/drivers/overlay.md (`--internal`) and Docker's network isolation:
/// two networks do not reach each other; an internal one has no way out, not even DNS.
#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn docker_networks_are_isolated_and_internal_ones_have_no_egress() {
    need_docker("docker_networks_are_isolated_and_internal_ones_have_no_egress");
    let lab = docker_lab(2, &[]);
    shoal_network(&lab, "a", &[], &[]);
    shoal_network(&lab, "b", &[], &["n2"]);
    shoal_network(&lab, "vault", &["--internal"], &[]);
    run(&lab, "n1", "ca", "a", &[]);
    run(&lab, "n1", "cv", "vault", &[]);
    run(&lab, "n2", "cb", "b", &[]);
    let cb = ip_on(&lab, "n2", "cb", "b");
    let ca = netns_of(&lab, "n1", "ca");
    assert!(!ca.can_connect(SocketAddr::new(cb.into(), 80), Duration::from_secs(1)));
    let ping = docker(
        &lab,
        "n1",
        &["exec", "ca", "ping", "-c", "1", "-W", "1", &cb.to_string()],
    );
    assert!(!ping.ok(), "network a reached network b");
    // The client host listens on the underlay; a container on a plain network gets out.
    let client = Sandbox {
        ns: lab.host_ns("client"),
    };
    let listening = client.sink("198.18.0.250:6000".parse().unwrap());
    let sent = netns_of(&lab, "n1", "ca").send("198.18.0.250:6000".parse().unwrap(), 1000, None);
    assert_eq!(sent.join().unwrap(), listening.join().unwrap().1);
    let vault = netns_of(&lab, "n1", "cv");
    assert!(
        !vault.can_connect("198.18.0.250:6000".parse().unwrap(), Duration::from_secs(1)),
        "the internal network got out"
    );
    let dns = docker(&lab, "n1", &["exec", "cv", "nslookup", "example.test"]);
    assert!(
        !dns.stdout.contains("192.0.2.7"),
        "the internal network resolved an outside name: {}",
        dns.stdout
    );
    let fine = docker_ok(&lab, "n1", &["exec", "ca", "nslookup", "example.test"]);
    assert!(fine.contains("192.0.2.7"), "{fine}");
}

/// docs: network/drivers/overlay.md (`--opt encrypted`): between hosts the containers'
/// traffic travels only inside WireGuard (UDP 51820); no VXLAN and no payload is seen.
#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn an_encrypted_docker_network_carries_only_wireguard_between_hosts() {
    need_docker("an_encrypted_docker_network_carries_only_wireguard_between_hosts");
    let lab = docker_lab(2, &[]);
    shoal_network(&lab, "sec", &["--opt", "encrypted"], &["n2"]);
    assert_eq!(
        lab.json("n1", &["network", "inspect", "sec"])["encrypted"],
        true
    );
    run(&lab, "n1", "s1", "sec", &[]);
    run(&lab, "n2", "s2", "sec", &[]);
    let s1 = ip_on(&lab, "n1", "s1", "sec");
    wait_until("s2 to reach s1", Duration::from_secs(15), || {
        let out = docker(
            &lab,
            "n2",
            &["exec", "s2", "ping", "-c", "1", "-W", "1", &s1.to_string()],
        );
        if out.ok() {
            Ok(())
        } else {
            Err(out.stderr)
        }
    });
    let mut capture = Capture::start(
        &lab.host_ns("n2"),
        "eth0",
        &["udp", "and", "host", "198.18.0.1"],
    );
    let secret = "shoal-plaintext-marker-".repeat(20);
    let sink = netns_of(&lab, "n1", "s1").sink(SocketAddr::new(s1.into(), 5001));
    let _ = docker(
        &lab,
        "n2",
        &[
            "exec",
            "s2",
            "sh",
            "-c",
            &format!("echo {secret} | nc {s1} 5001"),
        ],
    );
    let (_, got, _) = sink.join().unwrap();
    assert_eq!(
        got,
        shoal_tests::sha256_hex(format!("{secret}\n").as_bytes()),
        "the secret arrived intact"
    );
    let bytes = capture.stop();
    let summary = exec_in(
        &lab.host_ns("n2"),
        &["tcpdump", "-nr", &capture.path().to_string_lossy()],
    )
    .stdout;
    let text = String::from_utf8_lossy(&bytes);
    assert!(!bytes.is_empty(), "nothing captured");
    assert!(
        !text.contains("shoal-plaintext-marker"),
        "the payload crossed the underlay in the clear"
    );
    let between: Vec<&str> = summary
        .lines()
        .filter(|l| l.contains("198.18.0.1."))
        .collect();
    assert!(
        !between.is_empty(),
        "no packets between the hosts: {summary}"
    );
    for line in &between {
        assert!(line.contains(".51820"), "not WireGuard: {line}");
        assert!(!line.contains(".4789"), "VXLAN in the clear: {line}");
    }
}

/// docs: reference/commandline/network_create.md (`--subnet`, `--gateway`,
/// `--ip-range`, `--aux-address`, `--label`, `-o`), run.md (`--ip`) and
/// network_connect.md / network_disconnect.md: a Docker network's options land in
/// shoal, containers take addresses from the range with the gateway as their route,
/// connect and disconnect add and remove endpoints, and `network rm` removes it.
#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn docker_network_options_land_in_shoal_and_connect_disconnect_follow() {
    need_docker("docker_network_options_land_in_shoal_and_connect_disconnect_follow");
    let lab = docker_lab(1, &[]);
    #[rustfmt::skip]
    shoal_network(&lab, "opts", &[
        "--subnet", "10.90.0.0/24", "--gateway", "10.90.0.254",
        "--ip-range", "10.90.0.128/25", "--aux-address", "printer=10.90.0.129",
        "--opt", "mtu=1400", "--label", "team=blue",
    ], &[]);
    let net = lab.json("n1", &["network", "inspect", "opts"]);
    assert_eq!(net["gateway"], "10.90.0.254", "{net}");
    assert_eq!(net["ip_range"], "10.90.0.128/25", "{net}");
    assert_eq!(net["aux_addresses"]["printer"], "10.90.0.129", "{net}");
    assert_eq!(net["mtu"], 1400, "{net}");
    assert_eq!(net["labels"]["team"], "blue", "{net}");

    run(&lab, "n1", "c1", "opts", &[]);
    let c1 = ip_on(&lab, "n1", "c1", "opts");
    let range: ipnet::Ipv4Net = "10.90.0.128/25".parse().unwrap();
    assert!(
        range.contains(&c1) && c1 != Ipv4Addr::new(10, 90, 0, 129),
        "{c1}"
    );
    let mtu = docker_ok(
        &lab,
        "n1",
        &["exec", "c1", "cat", "/sys/class/net/eth0/mtu"],
    );
    assert_eq!(mtu.trim(), "1400");
    let routes = docker_ok(&lab, "n1", &["exec", "c1", "ip", "route"]);
    assert!(routes.contains("default via 10.90.0.254"), "{routes}");
    run(&lab, "n1", "c2", "opts", &["--ip", "10.90.0.140"]);
    assert_eq!(
        ip_on(&lab, "n1", "c2", "opts"),
        Ipv4Addr::new(10, 90, 0, 140)
    );
    let e = docker_fails(
        &lab,
        "n1",
        &[
            "run",
            "-d",
            "--network",
            "opts",
            "--ip",
            "10.90.0.140",
            IMAGE,
            "true",
        ],
    );
    assert!(e.contains("10.90.0.140"), "{e}");

    // connect and disconnect a container that lives on another network.
    shoal_network(&lab, "side", &[], &[]);
    run(&lab, "n1", "c3", "side", &[]);
    let in_use = || lab.json("n1", &["network", "inspect", "opts"])["in_use"].clone();
    let before = in_use();
    docker_ok(&lab, "n1", &["network", "connect", "opts", "c3"]);
    let c3 = ip_on(&lab, "n1", "c3", "opts");
    assert!(range.contains(&c3), "{c3}");
    pings(&lab, "n1", "c3", "c1");
    pings(&lab, "n1", "c1", &c3.to_string());
    assert_ne!(in_use(), before);
    docker_ok(&lab, "n1", &["network", "disconnect", "opts", "c3"]);
    wait_until("c3's address to be free", Duration::from_secs(10), || {
        let now = in_use();
        (now == before)
            .then_some(())
            .ok_or(format!("{now} in use, {before} before"))
    });
    let out = docker(
        &lab,
        "n1",
        &["exec", "c1", "ping", "-c", "1", "-W", "1", &c3.to_string()],
    );
    assert!(!out.ok(), "c1 still reaches c3 after the disconnect");

    let e = docker_fails(&lab, "n1", &["network", "rm", "opts"]);
    assert!(e.contains("active endpoints"), "{e}");
    docker_ok(&lab, "n1", &["rm", "-f", "c1", "c2"]);
    docker_ok(&lab, "n1", &["network", "rm", "opts"]);
    wait_until("opts to leave shoal", Duration::from_secs(10), || {
        let out = lab.shoal("n1", &["network", "inspect", "opts"]);
        (!out.ok()).then_some(()).ok_or(out.stdout)
    });
}

/// docs: network/drivers/overlay.md and Docker's `--ipv6`: `docker network create -d
/// shoal --ipam-driver shoal --ipv6` makes a dual-stack shoal network; containers on two
/// hosts get an IPv6 address from its /64 beside the IPv4 one, with the IPv6 gateway,
/// and reach each other over IPv6 with data intact and no NAT. The other host must say
/// `--ipv6` too, and gets a clear error when it does not.
#[test]
#[cfg_attr(
    skip_privileged,
    ignore = "needs root and dockerd (SHOAL_SKIP_PRIVILEGED=1)"
)]
fn a_dual_stack_docker_network_carries_ipv6_across_hosts() {
    need_docker("a_dual_stack_docker_network_carries_ipv6_across_hosts");
    let lab = docker_lab(2, &[]);
    let created = shoal_network_create(&lab, "n1", &["--ipv6", "web6"]);
    assert!(created.ok(), "{}", created.stderr);
    in_shoal(&lab, "web6");
    let net = lab.json("n1", &["network", "inspect", "web6"]);
    assert_eq!(net["enable_ipv6"], true, "{net}");
    let subnet = net["ipam_config"][0]["subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let subnet6 = net["ipam_config"][1]["subnet"]
        .as_str()
        .unwrap()
        .to_string();
    let gateway6 = net["ipam_config"][1]["gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let prefix: ipnet::Ipv6Net = subnet6.parse().unwrap();
    assert_eq!(prefix.prefix_len(), 64, "{net}");

    // The same network on n2 without --ipv6 would leave its containers without the
    // IPv6 addresses shoal gives them: refused, saying what to give.
    let refused = shoal_network_create(&lab, "n2", &["--subnet", &subnet, "web6"]);
    assert!(!refused.ok(), "created without --ipv6");
    let e = refused.stderr;
    assert!(e.contains("dual-stack") && e.contains(&subnet6), "{e}");
    let both = ["--ipv6", "--subnet", &subnet, "--subnet", &subnet6, "web6"];
    let created = shoal_network_create(&lab, "n2", &both);
    assert!(created.ok(), "{}", created.stderr);

    run(&lab, "n1", "b1", "web6", &[]);
    // `--ip6` asks shoal's IPAM for that address.
    let fixed = std::net::Ipv6Addr::from(u128::from(prefix.network()) + 0x99);
    run(&lab, "n2", "b2", "web6", &["--ip6", &fixed.to_string()]);
    let ip6_on = |host: &str, c: &str| -> std::net::Ipv6Addr {
        let f = "{{(index .NetworkSettings.Networks \"web6\").GlobalIPv6Address}}";
        docker_ok(&lab, host, &["inspect", "-f", f, c])
            .parse()
            .unwrap()
    };
    let (b1, b2) = (ip6_on("n1", "b1"), ip6_on("n2", "b2"));
    assert!(prefix.contains(&b1) && b1 != b2);
    assert_eq!(b2, fixed);
    let f = "{{(index .NetworkSettings.Networks \"web6\").IPv6Gateway}}";
    assert_eq!(docker_ok(&lab, "n1", &["inspect", "-f", f, "b1"]), gateway6);
    // shoal holds the same addresses Docker gave.
    let eps = lab.json("n1", &["network", "inspect", "web6"])["endpoints"].clone();
    let shoal6: Vec<&str> = eps
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["address6"].as_str())
        .collect();
    for ip in [b1, b2] {
        assert!(shoal6.contains(&format!("{ip}/64").as_str()), "{eps}");
    }

    pings(&lab, "n2", "b2", &b1.to_string());
    // 8 MB over IPv6 across hosts, checksummed, from the sender's own address.
    let at = SocketAddr::new(b1.into(), 5006);
    let sink = netns_of(&lab, "n1", "b1").sink(at);
    let sent = netns_of(&lab, "n2", "b2").send(at, 8 << 20, None);
    let sent = sent.join().unwrap();
    let (bytes, got, peer) = sink.join().unwrap();
    assert_eq!((bytes, got), (8 << 20, sent));
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V6(b2),
        "no NAT between containers"
    );

    // Removed containers give their IPv6 addresses back.
    docker_ok(&lab, "n2", &["rm", "-f", "b2"]);
    wait_until("b2's IPv6 address freed", Duration::from_secs(10), || {
        let eps = lab.json("n1", &["network", "inspect", "web6"])["endpoints"].clone();
        let held = eps.to_string().contains(&b2.to_string());
        (!held).then_some(()).ok_or(eps.to_string())
    });
}
