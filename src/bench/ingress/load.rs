//! The load a contender gets and what one run of it measured: wrk (HTTP/1.1, plain or
//! TLS), h2load (HTTP/2 over TLS, many streams per connection) or the bench's own
//! handshake client (a new TLS connection per request), always pinned to core 1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use shoal_dataplane::netns;

use super::handshake;

/// wrk's connections (one thread).
pub(super) const WRK_CONNECTIONS: usize = 50;
/// h2load's connections and streams per connection (one thread).
pub(super) const H2_CONNECTIONS: usize = 10;
pub(super) const H2_STREAMS: usize = 100;

/// Whether this run is a quick smoke check (`shoal bench ingress --quick`): short runs,
/// one round per proxy.
static QUICK: AtomicBool = AtomicBool::new(false);

/// Makes this run quick (or not).
pub(super) fn set_quick(quick: bool) {
    QUICK.store(quick, Ordering::Relaxed);
}

/// How long runs take and how many rounds there are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Pace {
    /// A measured run.
    pub run: Duration,
    /// The unmeasured run right before each measured one: the first proxy of a round
    /// would otherwise pay for the machine's switch from the previous proxy (its p99
    /// above all).
    pub warm_up: Duration,
    /// Interleaved rounds per proxy, at least (rounded up to a multiple of the proxies
    /// compared, so each takes every place in a round equally often).
    pub rounds: usize,
}

/// The pace of this run.
pub(super) fn pace() -> Pace {
    if QUICK.load(Ordering::Relaxed) {
        Pace {
            run: Duration::from_secs(1),
            warm_up: Duration::from_secs(1),
            rounds: 1,
        }
    } else {
        Pace {
            run: Duration::from_secs(5),
            warm_up: Duration::from_secs(1),
            rounds: 9,
        }
    }
}

/// What generates the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Load {
    /// wrk, keep-alive HTTP/1.1 ([`WRK_CONNECTIONS`] connections).
    Wrk,
    /// h2load, HTTP/2 over TLS ([`H2_CONNECTIONS`] × [`H2_STREAMS`] streams).
    H2load,
    /// The handshake client: a new TLS 1.3 connection per request, resuming or not.
    Handshakes {
        /// Offer the last session's ticket.
        resume: bool,
    },
}

/// One run's figures. Those a load generator does not measure are NaN.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Sample {
    /// Requests (or handshakes) per second.
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Bytes per second received by the client (wrk's Transfer/sec).
    pub bytes_per_sec: f64,
    /// How busy core 1 (the load generator and the backend) was, 0 to 1.
    pub load_core_busy: f64,
}

/// The load generators' programs.
pub(super) struct Tools {
    pub wrk: PathBuf,
    /// Only when HTTP/2 is measured.
    pub h2load: Option<PathBuf>,
}

/// What a load is aimed at.
#[derive(Debug, Clone, Copy)]
pub(super) struct Aim<'a> {
    pub ns: &'a Path,
    pub port: u16,
    pub https: bool,
    pub path: &'a str,
    pub header: Option<&'a str>,
}

impl Aim<'_> {
    fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{}", self.port, self.path)
    }
}

/// One run of `load` at `aim` for `duration`.
pub(super) fn run(
    tools: &Tools,
    load: Load,
    aim: Aim<'_>,
    duration: Duration,
) -> anyhow::Result<Sample> {
    let before = core_times(1);
    let mut sample = match load {
        Load::Wrk => wrk(&tools.wrk, aim, duration),
        Load::H2load => {
            let h2load = tools.h2load.as_deref().context("h2load was not found")?;
            h2load_run(h2load, aim, duration)
        }
        Load::Handshakes { resume } => {
            let run = handshake::run(aim.ns, aim.port, resume, duration)?;
            run.check(resume)?;
            Ok(run.sample())
        }
    }?;
    sample.load_core_busy = match (before, core_times(1)) {
        (Some(b), Some(a)) => busy(b, a),
        _ => f64::NAN,
    };
    Ok(sample)
}

/// Core `core`'s (busy, total) jiffies from /proc/stat.
fn core_times(core: usize) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_core_times(&stat, core)
}

fn parse_core_times(stat: &str, core: usize) -> Option<(u64, u64)> {
    let label = format!("cpu{core}");
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&label))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The busy fraction between two [`core_times`].
fn busy(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1);
    if total == 0 {
        return f64::NAN;
    }
    after.0.saturating_sub(before.0) as f64 / total as f64
}

/// `cmd` run on core 1 inside `ns`: its standard output.
fn on_core_1(ns: &Path, program: &Path, args: &[String]) -> anyhow::Result<String> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg("1").arg(program).args(args);
    netns::command_in(&mut cmd, &netns::open(&ns.to_string_lossy())?, false)?;
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", program.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `duration` in whole seconds, at least one (wrk and h2load take no finer unit).
fn whole_secs(duration: Duration) -> u64 {
    duration.as_secs().max(1)
}

fn wrk(wrk: &Path, aim: Aim<'_>, duration: Duration) -> anyhow::Result<Sample> {
    let mut args = vec![
        "-t1".to_string(),
        format!("-c{WRK_CONNECTIONS}"),
        "-d".into(),
        format!("{}s", whole_secs(duration)),
        "--latency".into(),
    ];
    if let Some(h) = aim.header {
        args.extend(["-H".to_string(), h.to_string()]);
    }
    args.push(aim.url());
    let text = on_core_1(aim.ns, wrk, &args)?;
    let errors = text.contains("Non-2xx") || text.contains("Socket errors");
    anyhow::ensure!(
        !errors,
        "errors during the run on port {}: {text}",
        aim.port
    );
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output: {text}"))
}

fn h2load_run(h2load: &Path, aim: Aim<'_>, duration: Duration) -> anyhow::Result<Sample> {
    let args = vec![
        "-t1".to_string(),
        format!("-c{H2_CONNECTIONS}"),
        format!("-m{H2_STREAMS}"),
        "-D".into(),
        whole_secs(duration).to_string(),
        aim.url(),
    ];
    let text = on_core_1(aim.ns, h2load, &args)?;
    parse_h2load(&text).with_context(|| format!("port {}: h2load: {text}", aim.port))
}

/// Milliseconds from wrk's "0.73ms" / "512.00us" / "1.02s".
pub(super) fn millis(s: &str) -> Option<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

/// Bytes from wrk's "812.34KB" / "1.15GB" (powers of 1024).
fn bytes(s: &str) -> Option<f64> {
    let units = [
        ("GB", 1u64 << 30),
        ("MB", 1 << 20),
        ("KB", 1 << 10),
        ("B", 1),
    ];
    units.iter().find_map(|(unit, factor)| {
        let n = s.strip_suffix(unit)?;
        n.parse::<f64>().ok().map(|v| v * *factor as f64)
    })
}

pub(super) fn parse_wrk(out: &str) -> Option<Sample> {
    let mut rps = None;
    let (mut p50, mut p99, mut transfer) = (None, None, None);
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => rps = v.parse().ok(),
            ["Transfer/sec:", v] => transfer = bytes(v),
            ["50%", v] => p50 = millis(v),
            ["99%", v] => p99 = millis(v),
            _ => {}
        }
    }
    Some(Sample {
        rps: rps?,
        p50_ms: p50?,
        p99_ms: p99?,
        bytes_per_sec: transfer?,
        load_core_busy: f64::NAN,
    })
}

/// h2load's summary: requests/s, refusing a run with failed or non-2xx requests or one
/// that did not speak HTTP/2.
fn parse_h2load(out: &str) -> anyhow::Result<Sample> {
    let field = |prefix: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(str::trim))
    };
    let protocol = field("Application protocol:");
    anyhow::ensure!(protocol == Some("h2"), "not HTTP/2 (ALPN {protocol:?})");
    // "requests: 100 total, 100 started, 100 done, 100 succeeded, 0 failed, 0 errored, 0 timeout"
    let requests = field("requests:").context("no request counts")?;
    let count = |what: &str| {
        requests
            .split(',')
            .find_map(|p| p.trim().strip_suffix(what)?.trim().parse::<u64>().ok())
    };
    let (done, ok) = (count("done"), count("succeeded"));
    anyhow::ensure!(
        done.is_some_and(|d| d > 0) && done == ok,
        "requests failed: {requests}"
    );
    let codes = field("status codes:").context("no status codes")?;
    anyhow::ensure!(
        codes.split(',').skip(1).all(|c| c.trim().starts_with("0 ")),
        "answers other than 2xx: {codes}"
    );
    // "finished in 5.00s, 95432.20 req/s, 14.54MB/s"
    let finished = field("finished in").context("no summary")?;
    let rps = finished
        .split(',')
        .find_map(|p| p.trim().strip_suffix("req/s")?.trim().parse::<f64>().ok())
        .context("no req/s")?;
    Ok(Sample {
        rps,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        bytes_per_sec: f64::NAN,
        load_core_busy: f64::NAN,
    })
}

/// The median of each figure over `runs` (not empty).
pub(super) fn median(runs: &[Sample]) -> Sample {
    let mid = |f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    Sample {
        rps: mid(|s| s.rps),
        p50_ms: mid(|s| s.p50_ms),
        p99_ms: mid(|s| s.p99_ms),
        bytes_per_sec: mid(|s| s.bytes_per_sec),
        load_core_busy: mid(|s| s.load_core_busy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rps: f64, p50_ms: f64, p99_ms: f64) -> Sample {
        Sample {
            rps,
            p50_ms,
            p99_ms,
            bytes_per_sec: rps * 10.0,
            load_core_busy: 0.5,
        }
    }

    #[test]
    fn each_figure_is_its_own_median() {
        let m = median(&[
            sample(3.0, 1.0, 9.0),
            sample(1.0, 3.0, 7.0),
            sample(2.0, 2.0, 8.0),
        ]);
        assert_eq!(
            (m.rps, m.p50_ms, m.p99_ms, m.bytes_per_sec),
            (2.0, 2.0, 8.0, 20.0)
        );
    }

    #[test]
    fn wrk_output_is_read() {
        let out = "  Latency Distribution\n     50%  730.00us\n     75%    1.10ms\n     90%    1.30ms\n     99%    1.44ms\n  600000 requests in 10.00s, 80MB read\nRequests/sec:  60123.45\nTransfer/sec:      1.50GB\n";
        let w = parse_wrk(out).unwrap();
        assert_eq!(w.rps, 60123.45);
        assert!((w.p50_ms - 0.73).abs() < 1e-9);
        assert!((w.p99_ms - 1.44).abs() < 1e-9);
        assert_eq!(w.bytes_per_sec, 1.5 * (1u64 << 30) as f64);
        assert!(parse_wrk("garbage").is_none());
        assert_eq!(millis("2s"), Some(2000.0));
        assert_eq!(bytes("812.50KB"), Some(812.5 * 1024.0));
        assert_eq!(bytes("12B"), Some(12.0));
        assert_eq!(bytes("12"), None);
    }

    #[test]
    fn core_busy_is_read_from_proc_stat() {
        let stat =
            "cpu  9 9 9 9 9 9 9 9 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\ncpu1 10 2 3 80 5 0 0 0 0 0\n";
        assert_eq!(parse_core_times(stat, 1), Some((15, 100)));
        assert_eq!(parse_core_times(stat, 0), Some((2, 12)));
        assert_eq!(parse_core_times(stat, 2), None);
        assert_eq!(busy((15, 100), (45, 200)), 0.3);
        assert!(busy((15, 100), (15, 100)).is_nan());
    }

    const H2LOAD: &str = "starting benchmark...\nspawning thread #0: 10 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.\nApplication protocol: h2\n\nfinished in 5.00s, 95432.20 req/s, 14.54MB/s\nrequests: 477161 total, 478161 started, 477161 done, 477161 succeeded, 0 failed, 0 errored, 0 timeout\nstatus codes: 477161 2xx, 0 3xx, 0 4xx, 0 5xx\n";

    #[test]
    fn h2load_output_is_read_and_failures_refused() {
        let s = parse_h2load(H2LOAD).unwrap();
        assert_eq!(s.rps, 95432.20);
        assert!(s.p99_ms.is_nan());
        let http1 = H2LOAD.replace("protocol: h2", "protocol: http/1.1");
        assert!(parse_h2load(&http1)
            .unwrap_err()
            .to_string()
            .contains("not HTTP/2"));
        let failed = H2LOAD.replace("477161 succeeded, 0 failed", "477000 succeeded, 161 failed");
        assert!(parse_h2load(&failed)
            .unwrap_err()
            .to_string()
            .contains("failed"));
        let errors = H2LOAD.replace("0 4xx", "3 4xx");
        assert!(parse_h2load(&errors)
            .unwrap_err()
            .to_string()
            .contains("other than 2xx"));
        assert!(parse_h2load("garbage").is_err());
    }
}
