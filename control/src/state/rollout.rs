//! Rolling changes of a service's tasks, as Docker Swarm's: the update config
//! (`--update-*`), the health check (`--health-*`), the stop grace period, the update
//! status, and the desired state and health of a task.
//!
//! ```text
//!  service update (task spec changed, or --force) ─▶ service version + 1, status updating
//!  leader, every tick: updater::plan ─▶ batches of old-version tasks replaced
//!      start-first: new task ─▶ running and healthy (+ monitor) ─▶ old task shut down
//!      stop-first:  old task shut down ─▶ the scheduler fills the slot with a new one
//!  task shut down ─▶ out of every backend set at once ─▶ its node waits the grace
//!      period (connections finish) ─▶ SIGTERM ─▶ SIGKILL ─▶ state shutdown ─▶ removed
//! ```

use serde::{Deserialize, Serialize};

use super::SpecError;

/// Docker's default stop grace period.
pub const DEFAULT_STOP_GRACE_MS: u64 = 10_000;
/// Docker's default update monitor.
pub const DEFAULT_MONITOR_MS: u64 = 5_000;

/// `--update-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    /// The old task leaves (and drains) before its replacement starts.
    #[default]
    StopFirst,
    /// The new task starts, and passes its health check, before the old one leaves.
    StartFirst,
}

impl UpdateOrder {
    /// Parses `stop-first` or `start-first`.
    pub fn parse(s: &str) -> Result<UpdateOrder, SpecError> {
        match s {
            "stop-first" => Ok(UpdateOrder::StopFirst),
            "start-first" => Ok(UpdateOrder::StartFirst),
            other => Err(SpecError::Invalid(format!(
                "--update-order {other:?}: use stop-first or start-first"
            ))),
        }
    }

    /// The word Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateOrder::StopFirst => "stop-first",
            UpdateOrder::StartFirst => "start-first",
        }
    }
}

/// `--update-failure-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Stop replacing tasks; `service update` resumes.
    #[default]
    Pause,
    /// Go on with the next batch.
    Continue,
    /// Go back to the previous spec.
    Rollback,
}

impl FailureAction {
    /// Parses `pause`, `continue` or `rollback`.
    pub fn parse(s: &str) -> Result<FailureAction, SpecError> {
        match s {
            "pause" => Ok(FailureAction::Pause),
            "continue" => Ok(FailureAction::Continue),
            "rollback" => Ok(FailureAction::Rollback),
            other => Err(SpecError::Invalid(format!(
                "--update-failure-action {other:?}: use pause, continue or rollback"
            ))),
        }
    }

    /// The word Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
            FailureAction::Rollback => "rollback",
        }
    }
}

fn one() -> u32 {
    1
}

fn monitor() -> u64 {
    DEFAULT_MONITOR_MS
}

/// How a service's tasks are replaced (Docker's `UpdateConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// Tasks replaced at a time; 0: all at once.
    #[serde(default = "one")]
    pub parallelism: u32,
    /// Wait between one batch and the next (ms).
    #[serde(default)]
    pub delay_ms: u64,
    /// Stop or start first.
    #[serde(default)]
    pub order: UpdateOrder,
    /// What a failed new task leads to.
    #[serde(default)]
    pub failure_action: FailureAction,
    /// How long a new task is watched for failure after it is ready (ms).
    #[serde(default = "monitor")]
    pub monitor_ms: u64,
}

impl Default for UpdateConfig {
    /// Docker's defaults: one at a time, no delay, stop-first, pause, 5 s.
    fn default() -> Self {
        UpdateConfig {
            parallelism: 1,
            delay_ms: 0,
            order: UpdateOrder::StopFirst,
            failure_action: FailureAction::Pause,
            monitor_ms: DEFAULT_MONITOR_MS,
        }
    }
}

impl UpdateConfig {
    /// Whether it is the default.
    pub fn is_default(&self) -> bool {
        *self == UpdateConfig::default()
    }
}

fn thirty_s() -> u64 {
    30_000
}

fn three() -> u32 {
    3
}

/// A task's health check (Docker's `--health-*`): a shell command run in the task's
/// sandbox by its node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Run with `/bin/sh -c`; exit status 0 is healthy.
    pub command: String,
    /// Between checks (ms).
    #[serde(default = "thirty_s")]
    pub interval_ms: u64,
    /// A check running longer fails (ms).
    #[serde(default = "thirty_s")]
    pub timeout_ms: u64,
    /// Consecutive failures that make the task unhealthy.
    #[serde(default = "three")]
    pub retries: u32,
    /// Failures in this time after a start do not count (ms).
    #[serde(default)]
    pub start_period_ms: u64,
}

impl HealthCheck {
    /// A check of `command` with Docker's defaults: 30 s, 30 s, 3 retries, no start period.
    pub fn new(command: &str) -> HealthCheck {
        HealthCheck {
            command: command.to_string(),
            interval_ms: 30_000,
            timeout_ms: 30_000,
            retries: 3,
            start_period_ms: 0,
        }
    }
}

/// What the cluster wants of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    /// Run it.
    #[default]
    Running,
    /// Take it out of every backend set, let its connections finish, stop it.
    Shutdown,
}

impl DesiredState {
    /// Whether it is `Running` (the default, left out of the JSON).
    pub fn is_running(&self) -> bool {
        *self == DesiredState::Running
    }
}

/// A task's health, as its node's checks find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No check has passed yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl Health {
    /// The word Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Where a service's update is (Docker's `UpdateStatus.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Tasks are being replaced.
    Updating,
    /// Stopped after a failure; `service update` resumes.
    Paused,
    /// Every task runs the current spec.
    Completed,
    /// Going back to the previous spec.
    RollbackStarted,
    /// The rollback stopped after a failure.
    RollbackPaused,
    /// Every task runs the previous spec again.
    RollbackCompleted,
}

impl UpdateState {
    /// The word Docker uses.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateState::Updating => "updating",
            UpdateState::Paused => "paused",
            UpdateState::Completed => "completed",
            UpdateState::RollbackStarted => "rollback_started",
            UpdateState::RollbackPaused => "rollback_paused",
            UpdateState::RollbackCompleted => "rollback_completed",
        }
    }

    /// Whether tasks are being replaced.
    pub fn in_progress(self) -> bool {
        matches!(self, UpdateState::Updating | UpdateState::RollbackStarted)
    }
}

/// A service's update status (Docker's `UpdateStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatus {
    /// Where it is.
    pub state: UpdateState,
    /// When it started (unix ms).
    pub started_at_ms: u64,
    /// When it ended (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<u64>,
    /// Why it is where it is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Parses a Go duration as Docker's flags take them (`300ms`, `10s`, `1m30s`, `2h`);
/// a bare `0` is zero. At most a day.
pub fn parse_duration(s: &str) -> Result<u64, SpecError> {
    let bad = || {
        SpecError::Invalid(format!(
            "invalid duration {s:?}: use a number with a unit, such as 500ms, 10s or 1m30s"
        ))
    };
    if s == "0" {
        return Ok(0);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if total > 86_400_000 {
        return Err(SpecError::Invalid(format!(
            "duration {s:?} is longer than a day"
        )));
    }
    Ok(total)
}

/// Writes `ms` as a Go duration (`1m30s`, `500ms`, `0s`).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let (h, m, s, milli) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    let mut out = String::new();
    for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (milli, "ms")] {
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_go_writes_them() {
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert_eq!(parse_duration("500ms").unwrap(), 500);
        assert_eq!(parse_duration("10s").unwrap(), 10_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration("2h").unwrap(), 7_200_000);
        for bad in ["", "10", "s", "1x", "-1s", "1.5s", "25h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for ms in [0, 500, 10_000, 90_000, 3_723_004] {
            assert_eq!(parse_duration(&format_duration(ms)).unwrap(), ms);
        }
    }

    #[test]
    fn words_parse_back() {
        for o in [UpdateOrder::StopFirst, UpdateOrder::StartFirst] {
            assert_eq!(UpdateOrder::parse(o.as_str()).unwrap(), o);
        }
        for a in [
            FailureAction::Pause,
            FailureAction::Continue,
            FailureAction::Rollback,
        ] {
            assert_eq!(FailureAction::parse(a.as_str()).unwrap(), a);
        }
        assert!(UpdateOrder::parse("first").is_err());
        let json = serde_json::to_string(&UpdateOrder::StartFirst).unwrap();
        assert_eq!(json, "\"start-first\"");
    }
}
