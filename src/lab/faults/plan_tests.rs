use super::*;
use crate::lab::{topology, Host};

fn lab() -> Lab {
    let mut hosts: Vec<Host> = (1..=3)
        .map(|i| Host {
            name: format!("n{i}"),
            namespace: topology::ns_name("t", &format!("n{i}")),
            underlay_ip: topology::node_ip(i),
            underlay_ips: Vec::new(),
            socket: Default::default(),
            role: "manager".into(),
            wg_interface: String::new(),
        })
        .collect();
    hosts.push(Host {
        name: "client".into(),
        namespace: topology::ns_name("t", "client"),
        underlay_ip: topology::client_ip(),
        underlay_ips: Vec::new(),
        socket: Default::default(),
        role: "client".into(),
        wg_interface: String::new(),
    });
    Lab {
        name: "t".into(),
        hosts,
        dns_upstream: Vec::new(),
        docker: false,
        docker_args: Vec::new(),
        podman: false,
        agent_args: Vec::new(),
        data_tmpfs: None,
        underlay: topology::Underlay::Ipv4,
    }
}

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|a| a.to_string()).collect()
}

#[test]
fn groups_parse_with_or_without_spaces_and_bad_ones_are_refused() {
    let lab = lab();
    let want = vec![args(&["n1", "n2"]), args(&["n3", "client"])];
    assert_eq!(
        parse_groups(&lab, &args(&["n1,n2", "/", "n3,client"])).unwrap(),
        want
    );
    assert_eq!(
        parse_groups(&lab, &args(&["n1,n2/n3,client"])).unwrap(),
        want
    );
    for (bad, why) in [
        (vec!["n1,n2"], "at least two groups"),
        (vec!["n1", "/", ""], "group 2 of the partition is empty"),
        (vec!["n1", "/", "n9"], "no host \"n9\""),
        (vec!["n1,n2", "/", "n2"], "n2 is in more than one group"),
    ] {
        let e = parse_groups(&lab, &args(&bad)).unwrap_err().to_string();
        assert!(e.contains(why), "{bad:?}: {e}");
    }
}

#[test]
fn a_partition_cuts_each_group_from_the_others_only() {
    let lab = lab();
    let groups = vec![args(&["n1", "n2"]), args(&["n3"])];
    let steps = partition(&lab, &groups).unwrap();
    assert_eq!(steps.len(), 4, "one step per host");
    let script = |host: &str| {
        let ns = topology::ns_name("t", host);
        let s = steps.iter().find(|s| s.namespace == ns).unwrap();
        assert_eq!(s.argv, args(&["nft", "-f", "-"]));
        assert!(!s.may_fail);
        s.stdin.clone().unwrap()
    };
    let n1 = script("n1");
    assert!(
        n1.starts_with("table inet shoal_lab_cut\ndelete table inet shoal_lab_cut\n"),
        "replaces an earlier partition atomically: {n1}"
    );
    assert!(n1.contains("hook input priority -300"), "{n1}");
    assert!(n1.contains("ip saddr { 198.18.0.3 } drop"), "{n1}");
    assert!(n1.contains("ip daddr { 198.18.0.3 } drop"), "{n1}");
    assert!(
        !n1.contains("198.18.0.2") && !n1.contains("198.18.0.250"),
        "{n1}"
    );
    let n3 = script("n3");
    assert!(
        n3.contains("ip saddr { 198.18.0.1, 198.18.0.2 } drop"),
        "{n3}"
    );
    // The client is in no group: it keeps talking to everyone, and loses any old cut.
    let client = script("client");
    assert_eq!(client, drop_table(CUT_TABLE));
}

#[test]
fn a_partition_of_a_dual_stack_underlay_cuts_both_families() {
    let mut lab = lab();
    for h in &mut lab.hosts {
        h.underlay_ips = topology::Underlay::Dual.addrs(h.underlay_ip);
        h.underlay_ip = h.underlay_ips[0];
    }
    let steps = partition(&lab, &[args(&["n1"]), args(&["n3"])]).unwrap();
    let ns = topology::ns_name("t", "n1");
    let n1 = steps
        .iter()
        .find(|s| s.namespace == ns)
        .and_then(|s| s.stdin.clone())
        .unwrap();
    assert!(n1.contains("ip saddr { 198.18.0.3 } drop"), "{n1}");
    assert!(n1.contains("ip6 saddr { fd00:5ea1::3 } drop"), "{n1}");
}

#[test]
fn slow_uses_nft_for_loss_tbf_for_rate_and_needs_netem_for_delay() {
    let lab = lab();
    let link = Link {
        loss_pct: Some(30),
        rate: Some("1mbit".into()),
        ..Default::default()
    };
    let steps = slow(&lab, "n2", &link, false).unwrap();
    let ns = topology::ns_name("t", "n2");
    assert!(steps.iter().all(|s| s.namespace == ns));
    assert_eq!(steps[0].argv.join(" "), "tc qdisc del dev eth0 root");
    assert!(steps[0].may_fail);
    assert_eq!(
        steps[1].argv.join(" "),
        "tc qdisc add dev eth0 root tbf rate 1mbit burst 16kb latency 200ms"
    );
    let nft = steps[2].stdin.clone().unwrap();
    assert!(
        nft.contains("oifname \"eth0\" numgen random mod 100 < 30 drop"),
        "{nft}"
    );
    assert!(nft.contains("hook postrouting"), "{nft}");

    let delay = Link {
        delay_ms: Some(50),
        ..Default::default()
    };
    let e = slow(&lab, "n2", &delay, false).unwrap_err().to_string();
    assert!(e.contains("sch_netem, which this kernel lacks"), "{e}");
    let steps = slow(&lab, "n2", &delay, true).unwrap();
    assert_eq!(
        steps[1].argv.join(" "),
        "tc qdisc add dev eth0 root netem delay 50ms"
    );
    // No loss asked: an earlier loss table goes.
    assert_eq!(
        steps[2].stdin.as_deref(),
        Some(drop_table(LOSS_TABLE).as_str())
    );
}

#[test]
fn slow_values_are_checked() {
    let lab = lab();
    for (link, why) in [
        (Link::default(), "give --delay, --loss or --rate"),
        (
            Link {
                loss_pct: Some(0),
                ..Default::default()
            },
            "from 1 to 100",
        ),
        (
            Link {
                rate: Some("fast".into()),
                ..Default::default()
            },
            "whole number followed by bit",
        ),
        (
            Link {
                rate: Some("1kbit".into()),
                ..Default::default()
            },
            "below 8kbit",
        ),
    ] {
        let e = slow(&lab, "n1", &link, true).unwrap_err().to_string();
        assert!(e.contains(why), "{link:?}: {e}");
    }
    assert!(slow(
        &lab,
        "n7",
        &Link {
            loss_pct: Some(5),
            ..Default::default()
        },
        true
    )
    .is_err());
    assert_eq!(rate_bits("512kbit").unwrap(), 512_000);
    assert_eq!(rate_bits("2Gbit").unwrap(), 2_000_000_000);
}

#[test]
fn heal_removes_both_tables_and_the_qdisc_in_every_host() {
    let lab = lab();
    let steps = heal_network(&lab);
    assert_eq!(steps.len(), 2 * lab.hosts.len());
    for h in &lab.hosts {
        let mine: Vec<&Step> = steps
            .iter()
            .filter(|s| s.namespace == h.namespace)
            .collect();
        let nft = mine[0].stdin.clone().unwrap();
        assert!(nft.contains("delete table inet shoal_lab_cut"), "{nft}");
        assert!(nft.contains("delete table inet shoal_lab_loss"), "{nft}");
        assert_eq!(mine[1].argv.join(" "), "tc qdisc del dev eth0 root");
        assert!(mine[1].may_fail, "no qdisc to remove is fine");
    }
}

#[test]
fn jumps_parse_and_absurd_ones_are_refused() {
    assert_eq!(parse_jump("+30s").unwrap(), 30);
    assert_eq!(parse_jump("-10s").unwrap(), -10);
    assert_eq!(parse_jump("5m").unwrap(), 300);
    assert_eq!(parse_jump("+1h").unwrap(), 3600);
    for bad in ["", "30", "+s", "+0s", "+2d", "+25h", "ten"] {
        assert!(parse_jump(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_new_fault_replaces_its_kind_on_its_host_only() {
    let p = |g: &[&str]| Fault::Partition {
        groups: vec![args(g), args(&["n3"])],
    };
    let pause = |h: &str| Fault::Pause {
        host: h.into(),
        pid: 1,
    };
    let faults = with_fault(&[p(&["n1"]), pause("n1")], pause("n2"));
    assert_eq!(faults.len(), 3);
    let faults = with_fault(&faults, p(&["n2"]));
    assert_eq!(faults, vec![pause("n1"), pause("n2"), p(&["n2"])]);
    assert_eq!(p(&["n1", "n2"]).describe(), "partition n1,n2 / n3");
}

#[test]
fn odd_input_is_refused_not_panicked_on() {
    for bad in [
        "+5é",
        "é",
        "+99999999999999999999h",
        "+9223372036854775807h",
    ] {
        assert!(parse_jump(bad).is_err(), "{bad}");
    }
    assert!(slow(
        &lab(),
        "n1",
        &Link {
            rate: Some("99999999999999gbit".into()),
            ..Default::default()
        },
        true
    )
    .is_err());
}
