//! Names, PTR records, aliases and resolvers as Docker has them.

use super::*;

/// moby daemon/libnetwork/resolver.go (forwardExtDNS: no host-side forwarding without
/// external access) and docs network/drivers/overlay.md `--internal`: a sandbox whose
/// networks are all internal gets SERVFAIL for names the resolver does not own, and
/// the upstream never sees the query; names on the network still resolve.
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn an_internal_network_resolver_forwards_nothing_upstream() {
    require_root("an_internal_network_resolver_forwards_nothing_upstream");
    let lab = Lab::up_with_upstream(BIN, 1, 1, &[]);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--internal",
            "--attachable",
            "--subnet",
            "10.60.0.0/24",
            "vault",
        ],
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.61.0.0/24",
            "open",
        ],
    );
    let inside = lab.sandbox("inside");
    let outside = lab.sandbox("outside");
    lab.ok(
        "n1",
        &[
            "attach",
            "--network",
            "vault",
            "--name",
            "inside",
            &inside.ns,
        ],
    );
    lab.ok(
        "n1",
        &[
            "attach",
            "--network",
            "open",
            "--name",
            "outside",
            &outside.ns,
        ],
    );
    let vault_dns: Ipv4Addr = "10.60.0.1".parse().unwrap();
    let open_dns: Ipv4Addr = "10.61.0.1".parse().unwrap();
    let own = ask(&inside.ns, vault_dns, "inside", A);
    assert_eq!(
        own.a,
        [Ipv4Addr::new(10, 60, 0, 2)],
        "its own names resolve"
    );
    let leaked = ask(&inside.ns, vault_dns, "example.test", A);
    assert_eq!(
        leaked.rcode, 2,
        "SERVFAIL, not the upstream's answer: {leaked:?}"
    );
    assert!(leaked.a.is_empty());
    let fine = ask(&outside.ns, open_dns, "example.test", A);
    assert_eq!(
        fine.a,
        [Ipv4Addr::new(192, 0, 2, 7)],
        "other networks still forward"
    );
}

/// docs: network/drivers/overlay.md and engine/swarm/networking.md (`<name>.<network>`
/// names), moby resolver.go handlePTRQuery (`<container>.<network>.`; a swarm task is
/// `<service>.<slot>.<task ID>`; VIPs have none), and shoal's 5 s TTL (README).
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn names_resolve_qualified_by_network_and_addresses_have_ptr_records() {
    require_root("names_resolve_qualified_by_network_and_addresses_have_ptr_records");
    let lab = Lab::up_with_upstream(BIN, 2, 1, &[]);
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.62.0.0/24",
            "front",
        ],
    );
    lab.create_service(
        &[
            "--name",
            "api",
            "--network",
            "name=front,alias=backend",
            "--replicas",
            "2",
        ],
        &http_tool(),
    );
    let sb = lab.sandbox("sb");
    let probe_ip: Ipv4Addr = ip_of(&lab.json(
        "n1",
        &[
            "attach",
            "--network",
            "front",
            "--name",
            "probe",
            "--alias",
            "prober",
            &sb.ns,
        ],
    ))
    .parse()
    .unwrap();
    let ts = wait_running(&lab, "api", 2);
    let dns: Ipv4Addr = "10.62.0.1".parse().unwrap();
    let vip: Ipv4Addr = lab.json("n1", &["service", "inspect", "api"])["vips"]["front"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut task_ips: Vec<Ipv4Addr> = ts
        .iter()
        .map(|t| t["addresses"]["front"].as_str().unwrap().parse().unwrap())
        .collect();
    task_ips.sort();
    for (name, want) in [
        ("api.front", vec![vip]),
        ("backend.front", vec![vip]),
        ("tasks.api.front", task_ips.clone()),
        ("tasks.backend", task_ips.clone()),
        ("probe.front", vec![probe_ip]),
        ("prober.front", vec![probe_ip]),
    ] {
        let got = ask(&sb.ns, dns, name, A);
        assert_eq!(got.a, want, "{name}: {got:?}");
        assert!(
            got.ttls.iter().all(|t| *t == 5),
            "{name}: short TTL: {got:?}"
        );
    }
    let probe = ask(&sb.ns, dns, &reverse(probe_ip), PTR);
    assert_eq!(probe.ptr, ["probe.front."]);
    for t in &ts {
        let ip: Ipv4Addr = t["addresses"]["front"].as_str().unwrap().parse().unwrap();
        let name = t["name"].as_str().unwrap();
        let id = t["id"].as_str().unwrap();
        let got = ask(&sb.ns, dns, &reverse(ip), PTR);
        assert_eq!(got.ptr.len(), 1, "{got:?}");
        assert!(
            got.ptr[0].starts_with(&format!("{name}.{id}")) && got.ptr[0].ends_with(".front."),
            "the task's PTR is <service>.<slot>.<task ID>.<network>.: {got:?}"
        );
        // And that name resolves forwards to the task.
        let fwd = ask(&sb.ns, dns, got.ptr[0].trim_end_matches('.'), A);
        assert_eq!(fwd.a, [ip]);
    }
    let vip_ptr = ask(&sb.ns, dns, &reverse(vip), PTR);
    assert!(
        vip_ptr.ptr.is_empty() && vip_ptr.rcode == 3,
        "a VIP has no PTR of ours; the upstream says NXDOMAIN: {vip_ptr:?}"
    );
}

/// docs: reference/commandline/service_create.md (`--network name=…,alias=…`,
/// `--dns`, `--dns-search`, `--dns-option`, `--hostname` templates) and
/// service_update.md (`--network-add/-rm`, `--endpoint-mode`).
#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn service_networks_aliases_endpoint_mode_and_dns_settings_like_docker() {
    require_root("service_networks_aliases_endpoint_mode_and_dns_settings_like_docker");
    let lab = Lab::up_with(BIN, 1, 1, &["--dns-upstream", "198.18.0.250:53"]);
    let client = lab.host_ns("client");
    let added = exec_in(
        &client,
        &["ip", "addr", "add", "198.18.0.251/15", "dev", "eth0"],
    );
    assert!(added.ok(), "{}", added.stderr);
    fake_upstream(
        &client,
        at("198.18.0.250", 53),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 7),
    );
    fake_upstream(
        &client,
        at("198.18.0.251", 53),
        "example.test",
        Ipv4Addr::new(192, 0, 2, 99),
    );
    lab.ok(
        "n1",
        &[
            "network",
            "create",
            "--attachable",
            "--subnet",
            "10.63.0.0/24",
            "apps",
        ],
    );
    lab.ok(
        "n1",
        &["network", "create", "--subnet", "10.64.0.0/24", "back"],
    );
    lab.create_service(
        &[
            "--name",
            "web",
            "--network",
            "name=apps,alias=site",
            "--dns",
            "198.18.0.251",
            "--dns-search",
            "example.test",
            "--dns-option",
            "timeout:1",
            "--hostname",
            "{{.Service.Name}}-{{.Task.Slot}}",
        ],
        &http_tool(),
    );
    let ts = wait_running(&lab, "web", 1);
    let task_id = ts[0]["id"].as_str().unwrap().to_string();
    let task_ip: Ipv4Addr = ts[0]["addresses"]["apps"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let sb = lab.sandbox("sb");
    lab.ok("n1", &["attach", "--network", "apps", &sb.ns]);
    let dns: Ipv4Addr = "10.63.0.1".parse().unwrap();
    let vip: Ipv4Addr = lab.json("n1", &["service", "inspect", "web"])["vips"]["apps"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ask(&sb.ns, dns, "site", A).a, [vip], "the alias is the VIP");
    assert_eq!(ask(&sb.ns, dns, "tasks.site", A).a, [task_ip]);
    assert_eq!(
        ask(&sb.ns, dns, "web-1", A).a,
        [task_ip],
        "the host name resolves"
    );
    let body = http_get(&sb.ns, SocketAddr::new(vip.into(), 80)).expect("the VIP answers");
    assert!(
        body.contains("hostname=web-1") && body.contains("slot=1"),
        "{body}"
    );
    // The task's own resolver settings and upstream.
    let task_ns = format!("shl-{}-n1-t{}", lab.name, &task_id[..12]);
    let conf = std::fs::read_to_string(format!("/etc/netns/{task_ns}/resolv.conf")).unwrap();
    assert!(conf.contains("nameserver 10.63.0.1"), "{conf}");
    assert!(conf.contains("search example.test"), "{conf}");
    assert!(conf.contains("options ndots:0 timeout:1"), "{conf}");
    assert_eq!(
        ask(&task_ns, dns, "example.test", A).a,
        [Ipv4Addr::new(192, 0, 2, 99)],
        "--dns is the task's upstream"
    );
    assert_eq!(
        ask(&sb.ns, dns, "example.test", A).a,
        [Ipv4Addr::new(192, 0, 2, 7)],
        "others keep the node's"
    );
    // Networks follow the service while its task runs.
    lab.ok(
        "n1",
        &[
            "service",
            "update",
            "--network-add",
            "name=back,alias=api",
            "web",
        ],
    );
    wait_until("the task on back", Duration::from_secs(15), || {
        let t = lab.tasks("web");
        match t[0]["addresses"]["back"].as_str() {
            Some(ip) => Ok(ip.to_string()),
            None => Err(format!("{t:?}")),
        }
    });
    let e = lab.fails("n1", &["service", "update", "--network-add", "back", "web"]);
    assert!(e.contains("already attached to network back"), "{e}");
    lab.ok("n1", &["service", "update", "--network-rm", "back", "web"]);
    wait_until("the task off back", Duration::from_secs(15), || {
        let t = lab.tasks("web");
        if t[0]["addresses"].get("back").is_none() {
            Ok(())
        } else {
            Err(format!("{t:?}"))
        }
    });
    // dnsrr: the name gives the tasks, not a VIP.
    lab.ok(
        "n1",
        &["service", "update", "--endpoint-mode", "dnsrr", "web"],
    );
    wait_until(
        "web to resolve to its task",
        Duration::from_secs(10),
        || {
            let a = resolve(&sb.ns, dns, "web", A).ok_or("no answer")?;
            if a.a == [task_ip] {
                Ok(())
            } else {
                Err(format!("{a:?}"))
            }
        },
    );
}
