//! What a fault does, as commands in the lab's host namespaces: pure functions of the
//! lab and the request, so the rules can be checked without a kernel.
//!
//! - A partition is a table `inet shoal_lab_cut` in every host of a group, dropping
//!   input and output to and from the underlay addresses of the hosts in the other
//!   groups (priority -300: before conntrack, so established connections stop too).
//!   VXLAN and WireGuard are UDP between underlay addresses and Raft and the API are
//!   TCP between them: all of it is cut; traffic between hosts of one group is not.
//! - Loss is a table `inet shoal_lab_loss` dropping that share of what leaves `eth0`
//!   (`numgen random`), as netem's loss does on egress only.
//! - Rate is a `tbf` root qdisc on `eth0`; delay a `netem` one, which needs sch_netem.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::lab::Lab;

/// The nftables table of a partition.
pub const CUT_TABLE: &str = "shoal_lab_cut";
/// The nftables table of `lab slow --loss`.
pub const LOSS_TABLE: &str = "shoal_lab_loss";

/// A fault in force, as `faults.json` and `lab status` have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// The network is cut between these groups of hosts.
    Partition {
        /// The groups.
        groups: Vec<Vec<String>>,
    },
    /// What leaves `host` on eth0 is delayed, dropped or limited.
    Slow {
        /// The host.
        host: String,
        /// How it is slowed.
        #[serde(flatten)]
        link: Link,
    },
    /// The agent of `host` is stopped (SIGSTOP).
    Pause {
        /// The host.
        host: String,
        /// The agent's PID.
        pid: i32,
    },
    /// The data directory of `host` is filled by `file`.
    Fill {
        /// The host.
        host: String,
        /// The filler.
        file: std::path::PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// The agent of `host` runs in a time namespace with its clocks shifted.
    Clock {
        /// The host.
        host: String,
        /// The shift of CLOCK_MONOTONIC and CLOCK_BOOTTIME, in seconds.
        jump_secs: i64,
    },
}

impl Fault {
    /// The host the fault is on (none for a partition).
    pub fn host(&self) -> Option<&str> {
        match self {
            Fault::Partition { .. } => None,
            Fault::Slow { host, .. }
            | Fault::Pause { host, .. }
            | Fault::Fill { host, .. }
            | Fault::Clock { host, .. } => Some(host),
        }
    }

    /// One line for `lab status`.
    pub fn describe(&self) -> String {
        match self {
            Fault::Partition { groups } => {
                let g: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
                format!("partition {}", g.join(" / "))
            }
            Fault::Slow { host, link } => format!("slow {host}: {}", link.describe()),
            Fault::Pause { host, pid } => format!("pause {host} (agent pid {pid} stopped)"),
            Fault::Fill { host, file, bytes } => {
                format!("fill {host}: {} ({bytes} bytes)", file.display())
            }
            Fault::Clock { host, jump_secs } => {
                format!("clock {host}: monotonic and boottime {jump_secs:+}s")
            }
        }
    }
}

/// How `lab slow` changes a link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Added delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u32>,
    /// Share of packets dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<u8>,
    /// Rate limit, in tc's syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
}

impl Link {
    /// Checks the values: some change, loss 1-100, delay 1-60000 ms, rate `N(k|m|g)bit`.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.delay_ms.is_none() && self.loss_pct.is_none() && self.rate.is_none() {
            bail!("give --delay, --loss or --rate (or `lab heal` to undo)");
        }
        if let Some(l) = self.loss_pct {
            if !(1..=100).contains(&l) {
                bail!("--loss must be a percentage from 1 to 100, not {l}");
            }
        }
        if let Some(d) = self.delay_ms {
            if !(1..=60_000).contains(&d) {
                bail!("--delay must be 1 to 60000 milliseconds, not {d}");
            }
        }
        if let Some(r) = &self.rate {
            rate_bits(r)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.delay_ms {
            parts.push(format!("delay {d} ms"));
        }
        if let Some(l) = self.loss_pct {
            parts.push(format!("loss {l}%"));
        }
        if let Some(r) = &self.rate {
            parts.push(format!("rate {r}"));
        }
        parts.join(", ")
    }
}

/// A rate in bits per second, from `N[k|m|g]bit`.
fn rate_bits(rate: &str) -> anyhow::Result<u64> {
    let bad = || {
        format!(
            "--rate {rate:?}: use a whole number followed by bit, kbit, mbit or gbit (e.g. 1mbit)"
        )
    };
    let lower = rate.to_ascii_lowercase();
    let number = lower.strip_suffix("bit").with_context(bad)?;
    let (digits, scale) = match number.chars().last() {
        Some('k') => (&number[..number.len() - 1], 1_000),
        Some('m') => (&number[..number.len() - 1], 1_000_000),
        Some('g') => (&number[..number.len() - 1], 1_000_000_000),
        _ => (number, 1),
    };
    let n: u64 = digits.parse().ok().filter(|n| *n > 0).with_context(bad)?;
    let bits = n.checked_mul(scale).with_context(bad)?;
    if bits < 8_000 {
        bail!("--rate {rate:?} is below 8kbit, too slow for the cluster to say anything");
    }
    Ok(bits)
}

/// One command to run inside a host's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The namespace.
    pub namespace: String,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// What it reads on stdin (an nft script).
    pub stdin: Option<String>,
    /// Whether a failure is fine (removing what may not be there).
    pub may_fail: bool,
}

impl Step {
    fn nft(namespace: &str, script: String) -> Step {
        Step {
            namespace: namespace.to_string(),
            argv: vec!["nft".into(), "-f".into(), "-".into()],
            stdin: Some(script),
            may_fail: false,
        }
    }

    fn tc(namespace: &str, args: &[&str], may_fail: bool) -> Step {
        let mut argv = vec!["tc".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        Step {
            namespace: namespace.to_string(),
            argv,
            stdin: None,
            may_fail,
        }
    }
}

/// An nft script that removes `table` if it is there (declaring it first makes the
/// delete succeed either way).
fn drop_table(table: &str) -> String {
    format!("table inet {table}\ndelete table inet {table}\n")
}

/// Parses `lab partition` arguments (`n1,n2 / n3` or `n1,n2/n3`) into checked groups:
/// at least two, none empty, every host in the lab and in one group only.
pub fn parse_groups(lab: &Lab, args: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let text = args.join(" ");
    let groups: Vec<Vec<String>> = text
        .split('/')
        .map(|g| {
            g.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|h| !h.is_empty())
                .map(String::from)
                .collect()
        })
        .collect();
    if groups.len() < 2 {
        bail!("a partition needs at least two groups separated by `/`, e.g. `n1,n2 / n3`");
    }
    let mut seen = BTreeSet::new();
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            bail!("group {} of the partition is empty (in {text:?})", i + 1);
        }
        for host in group {
            lab.host(host)?;
            if !seen.insert(host.as_str()) {
                bail!("{host} is in more than one group of the partition");
            }
        }
    }
    Ok(groups)
}

/// The commands that put `groups` in force, replacing an earlier partition: a cut table
/// in every host of a group, and none in the hosts of no group.
pub fn partition(lab: &Lab, groups: &[Vec<String>]) -> anyhow::Result<Vec<Step>> {
    let mut steps = Vec::new();
    for host in &lab.hosts {
        let mine = groups.iter().position(|g| g.contains(&host.name));
        let Some(mine) = mine else {
            steps.push(Step::nft(&host.namespace, drop_table(CUT_TABLE)));
            continue;
        };
        let others: Vec<IpAddr> = groups
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != mine)
            .flat_map(|(_, g)| g.iter())
            .map(|h| lab.host(h).map(|h| h.addrs()))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .flatten()
            .collect();
        steps.push(Step::nft(&host.namespace, cut_script(&others)));
    }
    Ok(steps)
}

/// The cut table of a host: drop everything from and to `others`.
fn cut_script(others: &[IpAddr]) -> String {
    let (v4, v6): (Vec<&IpAddr>, Vec<&IpAddr>) = others.iter().partition(|a| a.is_ipv4());
    let list = |a: &[&IpAddr]| {
        a.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rules = String::new();
    if !v4.is_empty() {
        let l = list(&v4);
        rules.push_str(&format!(
            "  chain input {{ type filter hook input priority -300; policy accept; ip saddr {{ {l} }} drop; }}\n"
        ));
        rules.push_str(&format!(
            "  chain output {{ type filter hook output priority -300; policy accept; ip daddr {{ {l} }} drop; }}\n"
        ));
    }
    if !v6.is_empty() {
        let l = list(&v6);
        rules.push_str(&format!(
            "  chain input6 {{ type filter hook input priority -300; policy accept; ip6 saddr {{ {l} }} drop; }}\n"
        ));
        rules.push_str(&format!(
            "  chain output6 {{ type filter hook output priority -300; policy accept; ip6 daddr {{ {l} }} drop; }}\n"
        ));
    }
    format!(
        "{}table inet {CUT_TABLE} {{\n{rules}}}\n",
        drop_table(CUT_TABLE)
    )
}

/// The commands that slow `host`'s eth0 as `link` says, replacing an earlier `lab slow`
/// of it. With `netem` false (the kernel has no sch_netem), a delay is refused.
pub fn slow(lab: &Lab, host: &str, link: &Link, netem: bool) -> anyhow::Result<Vec<Step>> {
    link.validate()?;
    let ns = &lab.host(host)?.namespace;
    let mut steps = vec![Step::tc(ns, &["qdisc", "del", "dev", "eth0", "root"], true)];
    match (link.delay_ms, &link.rate) {
        (Some(_), _) if !netem => bail!(
            "--delay needs the kernel's sch_netem, which this kernel lacks (`tc qdisc add ... netem` says the qdisc kind is unknown); --rate with a small rate adds queueing delay, --loss drops"
        ),
        (Some(ms), rate) => {
            let delay = format!("{ms}ms");
            let mut args = vec!["qdisc", "add", "dev", "eth0", "root", "netem", "delay", &delay];
            if let Some(r) = rate {
                args.extend(["rate", r.as_str()]);
            }
            steps.push(Step::tc(ns, &args, false));
        }
        (None, Some(rate)) => {
            // A burst of a few full frames, and at most 200 ms of queue.
            steps.push(Step::tc(
                ns,
                &[
                    "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", rate, "burst", "16kb",
                    "latency", "200ms",
                ],
                false,
            ));
        }
        (None, None) => {}
    }
    let loss = match link.loss_pct {
        Some(pct) => format!(
            "{}table inet {LOSS_TABLE} {{\n  chain egress {{ type filter hook postrouting priority 300; policy accept; oifname \"eth0\" numgen random mod 100 < {pct} drop; }}\n}}\n",
            drop_table(LOSS_TABLE)
        ),
        None => drop_table(LOSS_TABLE),
    };
    steps.push(Step::nft(ns, loss));
    Ok(steps)
}

/// The commands that undo every network fault in every host: the cut and loss tables
/// and the root qdisc of eth0 (whatever `faults.json` says, so a lost file heals too).
pub fn heal_network(lab: &Lab) -> Vec<Step> {
    lab.hosts
        .iter()
        .flat_map(|h| {
            [
                Step::nft(
                    &h.namespace,
                    format!("{}{}", drop_table(CUT_TABLE), drop_table(LOSS_TABLE)),
                ),
                Step::tc(&h.namespace, &["qdisc", "del", "dev", "eth0", "root"], true),
            ]
        })
        .collect()
}

/// Parses a clock jump: `+30s`, `-10s`, `+5m`, `2h` (seconds, minutes, hours; a day at
/// most either way).
pub fn parse_jump(text: &str) -> anyhow::Result<i64> {
    let bad = || format!("--jump {text:?}: use a signed duration such as +30s, -10s, +5m or +1h");
    let (sign, rest) = match text.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let unit_at = rest.len() - rest.chars().last().map_or(0, char::len_utf8);
    let (digits, unit) = rest.split_at(unit_at);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => bail!(bad()),
    };
    let n: i64 = digits.parse().with_context(bad)?;
    let secs = n.checked_mul(scale).map_or(i64::MAX, |s| sign * s);
    if secs == 0 || secs.abs() > 86_400 {
        bail!("--jump {text:?}: the shift must be non-zero and at most a day");
    }
    Ok(secs)
}

/// `faults` with `new` in force: it replaces a fault of the same kind on the same host
/// (any earlier partition, for a partition).
pub fn with_fault(faults: &[Fault], new: Fault) -> Vec<Fault> {
    let same = |f: &Fault| {
        std::mem::discriminant(f) == std::mem::discriminant(&new) && f.host() == new.host()
    };
    let mut out: Vec<Fault> = faults.iter().filter(|f| !same(f)).cloned().collect();
    out.push(new);
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
