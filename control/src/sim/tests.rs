//! The simulated Raft tier under the nemesis. `SHOAL_SIM_SEED=N` replays one seed.

use std::time::Instant;

use super::*;

fn run_seeds(configs: impl Iterator<Item = Config>) -> Vec<Report> {
    let wall = Instant::now();
    let reports: Vec<Report> = configs.map(|c| run(&c)).collect();
    let faults: usize = reports.iter().map(|r| r.faults.len()).sum();
    for r in &reports {
        println!("{r}");
    }
    let secs = wall.elapsed().as_secs_f64();
    println!(
        "{} seeds, {faults} faults in {secs:.1}s wall ({:.0} faults/s)",
        reports.len(),
        faults as f64 / secs
    );
    reports
}

#[test]
fn three_managers_under_the_nemesis_stay_linearizable() {
    let reports = run_seeds(seeds(1, 20).into_iter().map(Config::new));
    for r in &reports {
        assert!(r.passed(), "{r}");
        assert!(r.history.len() >= 100, "{r}");
    }
    assert!(reports.iter().map(|r| r.faults.len()).sum::<usize>() > 0);
}

#[test]
fn five_managers_under_the_nemesis_stay_linearizable() {
    let reports = run_seeds(seeds(101, 5).into_iter().map(|seed| Config {
        managers: 5,
        ..Config::new(seed)
    }));
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
    let reports = run_seeds((1..=10).map(|seed| Config {
        read_mode: ReadMode::Local,
        ..Config::new(seed)
    }));
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
