//! Containers on shoal networks: across hosts, isolated, encrypted.

use super::*;

/// docs: "Use with Docker" (README) and Weave's net-plugin workflow: containers on a
/// shoal network on two hosts reach each other by address, name and alias, move data
/// intact, and reach a shoal sandbox on the same network.
#[test]
fn docker_containers_on_a_shoal_network_reach_each_other_across_hosts() {
    if !need_docker("docker_containers_on_a_shoal_network_reach_each_other_across_hosts") {
        return;
    }
    let lab = docker_lab(2, &[]);
    shoal_network(&lab, "web", &[], &["n2"]);
    run(&lab, "n1", "b1", "web", &["--network-alias", "bee"]);
    run(&lab, "n2", "b2", "web", &[]);
    let b1 = ip_on(&lab, "n1", "b1", "web");
    let b2 = ip_on(&lab, "n2", "b2", "web");
    assert_ne!(b1, b2);
    for target in [b1.to_string(), "b1".into(), "bee".into()] {
        wait_until(
            &format!("b2 to reach {target}"),
            Duration::from_secs(10),
            || {
                let out = docker(
                    &lab,
                    "n2",
                    &["exec", "b2", "ping", "-c", "1", "-W", "1", &target],
                );
                if out.ok() {
                    Ok(())
                } else {
                    Err(out.stderr + &out.stdout)
                }
            },
        );
    }
    let looked_up = docker_ok(&lab, "n2", &["exec", "b2", "nslookup", "bee"]);
    assert!(looked_up.contains(&b1.to_string()), "{looked_up}");
    // A shoal sandbox on the same network, by name.
    let sb = lab.sandbox("sbx");
    lab.ok(
        "n1",
        &["attach", "--network", "web", "--name", "sbx", &sb.ns],
    );
    wait_until(
        "b2 to reach the sandbox by name",
        Duration::from_secs(10),
        || {
            let out = docker(
                &lab,
                "n2",
                &["exec", "b2", "ping", "-c", "1", "-W", "1", "sbx"],
            );
            if out.ok() {
                Ok(())
            } else {
                Err(out.stderr + &out.stdout)
            }
        },
    );
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
fn docker_networks_are_isolated_and_internal_ones_have_no_egress() {
    if !need_docker("docker_networks_are_isolated_and_internal_ones_have_no_egress") {
        return;
    }
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
fn an_encrypted_docker_network_carries_only_wireguard_between_hosts() {
    if !need_docker("an_encrypted_docker_network_carries_only_wireguard_between_hosts") {
        return;
    }
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
    let _ = sink.join();
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
