//! shoal as a CNI plugin: the spec's behaviour driven through the binary as a runtime
//! drives it (CNI_* environment, JSON on stdin, inside a lab host), and real podman
//! containers on shoal networks across lab hosts.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use shoal_tests::{require_root, Lab, Output};

mod podman;
mod spec;

const BIN: &str = env!("CARGO_BIN_EXE_shoal");

/// One CNI call: `command` with `vars` (CNI_COMMAND is set from `command`) and
/// `stdin`, run as the runtime on lab host `host` would run it.
fn cni(lab: &Lab, host: &str, command: &str, vars: &[(&str, &str)], stdin: &Value) -> Output {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.host_ns(host), BIN])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the plugin");
    let text = match stdin {
        Value::String(raw) => raw.clone(),
        other => other.to_string(),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The plugin's JSON answer (a result or an error).
fn answer(out: &Output) -> Value {
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} {:?}", out.stdout, out.stderr))
}

/// The network config shoal's plugin gets for `network` on `host`.
fn config(lab: &Lab, host: &str, network: &str, version: &str) -> Value {
    json!({
        "cniVersion": version,
        "name": network,
        "type": "shoal",
        "socket": lab.socket(host),
    })
}
