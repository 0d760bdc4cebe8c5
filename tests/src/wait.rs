//! Waiting for a condition with a deadline, instead of sleeping a fixed time.

use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within` saying
/// what was awaited and what `check` last reported.
pub fn wait_until<T>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match check() {
            Ok(v) => return v,
            Err(why) => why,
        };
        if start.elapsed() > within {
            panic!("timed out after {:?} waiting for {what}: {last}", within);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
