//! Benchmark reports: figures with the baseline they are measured against.

use serde::Serialize;

/// One line of a report.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// shoal's value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The baseline it is compared with.
    pub baseline: String,
    /// The baseline's value in the same run.
    pub baseline_value: f64,
    /// value / baseline_value.
    pub ratio: f64,
}

/// A benchmark's results.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Which benchmark.
    pub bench: String,
    /// When (UTC, from the system clock).
    pub date: String,
    /// The machine: CPU model, cores, kernel.
    pub machine: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Remarks (what could not be measured, and why).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for `bench`, stamped with the date and machine.
    pub fn new(bench: &str) -> Report {
        Report {
            bench: bench.to_string(),
            date: utc_date(),
            machine: machine(),
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a figure compared with a baseline.
    pub fn add(&mut self, name: &str, value: f64, unit: &str, baseline: &str, baseline_value: f64) {
        let ratio = if baseline_value == 0.0 {
            0.0
        } else {
            value / baseline_value
        };
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline: baseline.into(),
            baseline_value,
            ratio,
        });
    }

    /// A Markdown table, as the README carries it.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "`shoal bench {}` — {} — {}\n\n| figure | shoal | baseline (same run) | ratio |\n| --- | --- | --- | --- |\n",
            self.bench, self.date, self.machine
        );
        for f in &self.figures {
            out.push_str(&format!("| {} |\n", f.cells()));
        }
        for n in &self.notes {
            out.push_str(&format!("\n{n}\n"));
        }
        out
    }
}

impl Figure {
    /// The table cells: figure, shoal, baseline (same run), ratio.
    fn cells(&self) -> String {
        format!(
            "{} | {} {} | {}: {} {} | {:.2}×",
            self.name,
            fmt(self.value),
            self.unit,
            self.baseline,
            fmt(self.baseline_value),
            self.unit,
            self.ratio
        )
    }
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Today's date in UTC as YYYY-MM-DD.
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// CPU model, core count and kernel of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}

/// One table of every figure of `reports` (as `shoal bench all` prints it at the end),
/// stamped with the first report's date and machine, then the benchmarks that failed
/// (`(bench, why)`), each named so a reader knows which ratios are missing.
pub fn summary(reports: &[Report], failed: &[(String, String)]) -> String {
    let (date, machine) = reports
        .first()
        .map(|r| (r.date.clone(), r.machine.clone()))
        .unwrap_or_else(|| (utc_date(), machine()));
    let mut out = format!(
        "`shoal bench all` — {date} — {machine}\n\n| bench | figure | shoal | baseline (same run) | ratio |\n| --- | --- | --- | --- | --- |\n"
    );
    for r in reports {
        for f in &r.figures {
            out.push_str(&format!("| {} | {} |\n", r.bench, f.cells()));
        }
    }
    if !failed.is_empty() {
        out.push_str("\nNot measured:\n");
        for (bench, why) in failed {
            out.push_str(&format!("- `{bench}`: {why}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_markdown() {
        let mut r = Report::new("x");
        r.add("commit p50", 2.0, "ms", "fsync p50", 1.0);
        assert_eq!(r.figures[0].ratio, 2.0);
        assert!(r
            .markdown()
            .contains("| commit p50 | 2.000 ms | fsync p50: 1.000 ms | 2.00× |"));
        assert_eq!(utc_date().len(), 10);
    }

    fn report(bench: &str, figures: &[(&str, f64, f64)]) -> Report {
        let mut r = Report::new(bench);
        r.date = "2026-12-07".into();
        r.machine = "test CPU, 2 cores, Linux 6".into();
        for (name, v, b) in figures {
            r.add(name, *v, "/s", "peer", *b);
        }
        r
    }

    #[test]
    fn summary_has_one_row_per_figure_of_every_report_and_names_failures() {
        let reports = [
            report("control", &[("commits", 2000.0, 1000.0)]),
            report("dns", &[("queries", 50.0, 100.0), ("p99", 1.0, 4.0)]),
        ];
        let s = summary(&reports, &[("mesh".into(), "no ipvsadm".into())]);
        assert!(s.starts_with("`shoal bench all` — 2026-12-07 — test CPU, 2 cores, Linux 6\n"));
        let rows: Vec<&str> = s.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(rows.len(), 2 + 3, "{s}");
        assert_eq!(
            rows[2],
            "| control | commits | 2000 /s | peer: 1000 /s | 2.00× |"
        );
        assert_eq!(rows[4], "| dns | p99 | 1.000 /s | peer: 4.000 /s | 0.25× |");
        assert!(s.contains("\nNot measured:\n- `mesh`: no ipvsadm\n"), "{s}");
    }

    #[test]
    fn summary_without_failures_lists_none() {
        let s = summary(&[report("dns", &[("q", 1.0, 1.0)])], &[]);
        assert!(!s.contains("Not measured"));
    }
}
