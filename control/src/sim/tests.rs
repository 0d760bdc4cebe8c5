//! The simulated Raft tier under the nemesis. `SHOAL_SIM_SEED=N` replays one seed.

use super::*;

fn run_seeds(template: Config, first: u64, count: u64) -> Vec<Report> {
    let mut reports = Vec::new();
    let c = campaign(&template, seeds(first, count), |r| {
        println!("{r}");
        reports.push(r.clone());
    });
    println!("{c}");
    reports
}

#[test]
fn three_managers_under_the_nemesis_stay_linearizable() {
    let reports = run_seeds(Config::new(0), 1, 20);
    for r in &reports {
        assert!(r.passed(), "{r}");
        assert!(r.history.len() >= 100, "{r}");
    }
    assert!(reports.iter().map(|r| r.faults.len()).sum::<usize>() > 0);
}

#[test]
fn five_managers_under_the_nemesis_stay_linearizable() {
    let five = Config {
        managers: 5,
        ..Config::new(0)
    };
    let reports = run_seeds(five, 101, 5);
    for r in &reports {
        assert!(r.passed(), "{r}");
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let a = run(&Config::new(7));
    let b = run(&Config::new(7));
    assert_eq!(a.faults, b.faults);
    assert_eq!(a.history, b.history);
}

/// The agent's GET handlers serve reads from the local replica without a read index.
/// A follower applies a commit only when the leader's next message says so, and a
/// leader cut off from the majority serves its old state: the checker finds stale
/// reads in a few seeds even without faults that matter.
#[test]
fn local_replica_reads_are_not_linearizable() {
    let local = Config {
        read_mode: ReadMode::Local,
        ..Config::new(0)
    };
    let reports = run_seeds(local, 1, 10);
    let stale = reports
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Illegal(_)))
        .count();
    assert!(stale >= 2, "only {stale} of 10 seeds found a stale read");
    // Nothing else goes wrong: only reads are affected.
    for r in &reports {
        assert_eq!(r.problems, Vec::<String>::new(), "{r}");
    }
}

/// The README's goal: over 1,000 nemesis operations, 0 violations, 0 lost writes, 0
/// duplicate addresses. About 20 s in a debug build.
#[test]
fn a_thousand_faults() {
    let mut faults = 0;
    let mut failed = 0;
    for (managers, first) in [(3, 1000), (5, 2000)] {
        let template = Config {
            managers,
            ops: 300,
            ..Config::new(0)
        };
        let c = campaign(&template, seeds(first, 40), |r| {
            if !r.passed() {
                println!("{r}");
            }
        });
        println!("{managers} managers: {c}");
        faults += c.faults;
        failed += c.failed.len();
    }
    assert_eq!(failed, 0);
    assert!(faults >= 1000, "only {faults} faults");
}
