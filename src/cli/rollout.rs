//! `--update-*`, `--health-*` and `--stop-grace-period` of `service create` and
//! `service update`, and how `service inspect` shows them.

use anyhow::bail;

use shoal_control::api::ServiceUpdate;
use shoal_control::state::rollout::{format_duration, parse_duration};
use shoal_control::state::{FailureAction, HealthCheck, ServiceSpec, UpdateConfig, UpdateOrder};

use super::args::RolloutArgs;

fn ms(flag: &str, v: &Option<String>) -> anyhow::Result<Option<u64>> {
    v.as_deref()
        .map(|s| parse_duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
        .transpose()
}

/// `r` as the changes of `service update`, added to `u`.
pub fn changes(r: &RolloutArgs, u: &mut ServiceUpdate) -> anyhow::Result<()> {
    u.update_parallelism = r.update_parallelism;
    u.update_delay_ms = ms("update-delay", &r.update_delay)?;
    u.update_order = r
        .update_order
        .as_deref()
        .map(UpdateOrder::parse)
        .transpose()?;
    u.update_failure_action = r
        .update_failure_action
        .as_deref()
        .map(FailureAction::parse)
        .transpose()?;
    u.update_monitor_ms = ms("update-monitor", &r.update_monitor)?;
    u.health_cmd = r.health_cmd.clone();
    u.health_interval_ms = ms("health-interval", &r.health_interval)?;
    u.health_timeout_ms = ms("health-timeout", &r.health_timeout)?;
    u.health_retries = r.health_retries;
    u.health_start_period_ms = ms("health-start-period", &r.health_start_period)?;
    u.no_healthcheck = r.no_healthcheck;
    u.stop_grace_period_ms = ms("stop-grace-period", &r.stop_grace_period)?;
    Ok(())
}

/// `r` into the spec of `service create`.
pub fn apply_to_spec(r: &RolloutArgs, spec: &mut ServiceSpec) -> anyhow::Result<()> {
    let mut u = ServiceUpdate::default();
    changes(r, &mut u)?;
    let d = UpdateConfig::default();
    spec.update_config = UpdateConfig {
        parallelism: u.update_parallelism.unwrap_or(d.parallelism),
        delay_ms: u.update_delay_ms.unwrap_or(d.delay_ms),
        order: u.update_order.unwrap_or(d.order),
        failure_action: u.update_failure_action.unwrap_or(d.failure_action),
        monitor_ms: u.update_monitor_ms.unwrap_or(d.monitor_ms),
    };
    let tunes = u.health_interval_ms.is_some()
        || u.health_timeout_ms.is_some()
        || u.health_retries.is_some()
        || u.health_start_period_ms.is_some();
    spec.healthcheck = match &u.health_cmd {
        Some(cmd) if !r.no_healthcheck => {
            let mut h = HealthCheck::new(cmd);
            h.interval_ms = u.health_interval_ms.unwrap_or(h.interval_ms);
            h.timeout_ms = u.health_timeout_ms.unwrap_or(h.timeout_ms);
            h.retries = u.health_retries.unwrap_or(h.retries);
            h.start_period_ms = u.health_start_period_ms.unwrap_or(h.start_period_ms);
            Some(h)
        }
        Some(_) => bail!("--no-healthcheck conflicts with --health-cmd"),
        None if tunes => bail!("the --health-* options need --health-cmd"),
        None => None,
    };
    spec.stop_grace_period_ms = u.stop_grace_period_ms;
    Ok(())
}

/// The lines `service inspect` shows for them.
pub fn inspect_lines(spec: &ServiceSpec) -> Vec<(&'static str, String)> {
    let u = &spec.update_config;
    let mut out = vec![(
        "Update:",
        format!(
            "parallelism {}, delay {}, order {}, on failure {}, monitor {}",
            u.parallelism,
            format_duration(u.delay_ms),
            u.order.as_str(),
            u.failure_action.as_str(),
            format_duration(u.monitor_ms)
        ),
    )];
    if let Some(h) = &spec.healthcheck {
        out.push((
            "Health:",
            format!(
                "{:?} every {}, timeout {}, {} retries, start period {}",
                h.command,
                format_duration(h.interval_ms),
                format_duration(h.timeout_ms),
                h.retries,
                format_duration(h.start_period_ms)
            ),
        ));
    }
    out.push(("Stop grace:", format_duration(spec.stop_grace_ms())));
    out
}
