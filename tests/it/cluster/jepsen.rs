//! Seeded nemesis runs of the control plane (`shoal lab jepsen`): clients on every
//! manager while the lab is partitioned, paused and crashed; the history must be
//! linearizable, no acknowledged write lost (the final reads), no address given twice,
//! no kernel object left that the state no longer has. Every seed and verdict is
//! printed; `SHOAL_JEPSEN_SEEDS=7,8` replays given seeds.

use serde_json::Value;
use shoal_tests::{require_root, Lab};

use super::BIN;

fn seeds() -> Vec<String> {
    match std::env::var("SHOAL_JEPSEN_SEEDS") {
        Ok(s) if !s.trim().is_empty() => s.split(',').map(|s| s.trim().to_string()).collect(),
        _ => {
            // A fresh pair per run, printed, plus a fixed one that always runs.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            vec!["17".to_string(), now.to_string()]
        }
    }
}

#[test]
#[cfg_attr(skip_privileged, ignore = "needs root (SHOAL_SKIP_PRIVILEGED=1)")]
fn seeded_nemesis_runs_find_no_violation() {
    require_root("seeded_nemesis_runs_find_no_violation");
    let lab = Lab::up(BIN, 4, 3);
    for seed in seeds() {
        let out = lab.cli(&[
            "lab",
            "jepsen",
            "--name",
            &lab.name,
            "--seed",
            &seed,
            "--duration",
            "40s",
            "--fault-every",
            "2s",
            "--format",
            "json",
        ]);
        eprintln!("lab jepsen --seed {seed}:\n{}\n{}", out.stdout, out.stderr);
        let report: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("seed {seed}: no report ({e}): {}", out.stderr));
        let faults = report["faults"].as_array().map_or(0, Vec::len);
        eprintln!(
            "seed {seed}: {} operations ({} unknown), {faults} faults, linearizable: {}",
            report["operations"], report["unknown"], report["linearizable"]
        );
        assert!(faults >= 10, "seed {seed}: only {faults} faults");
        assert!(
            report["operations"].as_u64().unwrap_or(0) > 100,
            "seed {seed}"
        );
        assert_eq!(
            report["linearizable"], true,
            "seed {seed}: {}",
            report["violation"]
        );
        assert_eq!(report["converged"], true, "seed {seed}");
        assert_eq!(
            report["duplicate_addresses"],
            Value::Array(vec![]),
            "seed {seed}"
        );
        assert_eq!(
            report["stale_kernel_objects"],
            Value::Array(vec![]),
            "seed {seed}"
        );
        assert!(out.ok(), "seed {seed}: exit code {}", out.code);
    }
}
