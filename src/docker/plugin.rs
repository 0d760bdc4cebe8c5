//! The plugin process and its installation.
//!
//! `shoal docker-plugin serve` listens where dockerd looks for plugins and relays every
//! call to the local agent (`POST /v1/docker/<call>`), unchanged both ways; it keeps no
//! state, so restarting it loses nothing. `shoal docker-plugin install` makes it a
//! managed (v2) plugin: a directory with `config.json` and a root file system holding
//! this binary and the libraries it links, given to `docker plugin create` and
//! `docker plugin enable`, offline.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use super::protocol::ErrorReply;
use crate::client::unix_http;

/// The media type dockerd's plugin client speaks.
const PLUGIN_JSON: &str = "application/vnd.docker.plugins.v1+json";
/// The socket's name inside a managed plugin (dockerd allows about 22 characters).
const MANAGED_SOCKET: &str = "shoal.sock";
/// How long one relayed call may take (a Join waits for the data path).
const RELAY_TIMEOUT: Duration = Duration::from_secs(60);

fn plugin_reply(status: StatusCode, body: Bytes) -> Response {
    (status, [(http::header::CONTENT_TYPE, PLUGIN_JSON)], body).into_response()
}

fn plugin_error(message: String) -> Response {
    let body = serde_json::to_vec(&ErrorReply { err: message }).unwrap_or_default();
    plugin_reply(StatusCode::INTERNAL_SERVER_ERROR, Bytes::from(body))
}

async fn relay(
    State(agent): State<PathBuf>,
    UrlPath(call): UrlPath<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/docker/{}", crate::client::segment(&call));
    match unix_http(
        &agent,
        http::Method::POST,
        &path,
        Some(body.to_vec()),
        RELAY_TIMEOUT,
    )
    .await
    {
        Ok((status, body)) => plugin_reply(status, body),
        Err(e) => plugin_error(format!(
            "the shoal agent at {} does not answer ({e}); is `shoal agent` running on this host?",
            agent.display()
        )),
    }
}

/// Serves Docker's plugin protocols on `socket`, relaying to the agent at `agent`,
/// until SIGTERM or SIGINT.
pub async fn serve(socket: &Path, agent: &Path) -> anyhow::Result<()> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            bail!("a plugin is already listening on {}", socket.display());
        }
        std::fs::remove_file(socket)?;
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let app = Router::new()
        .route("/{call}", post(relay))
        .with_state(agent.to_path_buf());
    tracing::info!(socket = %socket.display(), agent = %agent.display(), "Docker plugin ready");
    let stop = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .context("Docker plugin server")?;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// The plugin's `config.json`: a network and IPAM driver on the host's network, with
/// the agent's socket directory mounted where the plugin process looks for it.
pub fn config_json(agent_socket: &Path) -> serde_json::Value {
    let dir = agent_socket.parent().unwrap_or(Path::new("/run/shoal"));
    serde_json::json!({
        "description": "shoal: overlay networks, IPAM, DNS and a routing mesh for containers on many hosts",
        "documentation": "https://github.com/shoal/shoal#use-with-docker",
        "entrypoint": [
            "/shoal", "--host", format!("unix://{}", agent_socket.display()),
            "docker-plugin", "serve", "--socket", format!("/run/docker/plugins/{MANAGED_SOCKET}")
        ],
        "workdir": "/",
        "interface": {
            "socket": MANAGED_SOCKET,
            "types": ["docker.networkdriver/1.0", "docker.ipamdriver/1.0"]
        },
        "network": {"type": "host"},
        "linux": {"capabilities": []},
        "mounts": [{
            "type": "bind",
            "source": dir.display().to_string(),
            "destination": dir.display().to_string(),
            "options": ["rbind", "rw"]
        }],
        "env": [{"name": "RUST_LOG", "settable": ["value"], "value": "info"}]
    })
}

/// The shared libraries `binary` links, as `ldd` lists them (absolute paths).
fn linked_libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd to find the libraries shoal needs")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    Ok(text
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Writes the plugin directory `dir`: `config.json` and `rootfs/` with this binary and
/// its libraries.
pub fn write_plugin_dir(dir: &Path, agent_socket: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    let rootfs = dir.join("rootfs");
    for sub in ["tmp", "run/docker/plugins", "etc", "proc", "dev", "sys"] {
        std::fs::create_dir_all(rootfs.join(sub))?;
    }
    std::fs::create_dir_all(
        rootfs.join(
            agent_socket
                .parent()
                .unwrap_or(Path::new("run/shoal"))
                .strip_prefix("/")
                .unwrap_or(Path::new("run/shoal")),
        ),
    )?;
    let exe = std::env::current_exe().context("cannot find this binary")?;
    std::fs::copy(&exe, rootfs.join("shoal"))
        .with_context(|| format!("cannot copy {} into the plugin", exe.display()))?;
    for lib in linked_libraries(&exe)? {
        let target = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(&lib, &target).with_context(|| format!("cannot copy {}", lib.display()))?;
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&config_json(agent_socket))?,
    )?;
    Ok(())
}

/// `shoal docker-plugin install`: writes the plugin directory under `data_dir`, then
/// `docker plugin create NAME DIR` and `docker plugin enable NAME` (replacing an
/// older install of the same name).
pub fn install(
    name: &str,
    data_dir: &Path,
    agent_socket: &Path,
    docker_host: Option<&str>,
) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c));
    if !valid {
        bail!("--name {name:?}: a plugin name is lower-case letters, digits and . _ - / :");
    }
    let dir = data_dir.join("docker-plugin");
    write_plugin_dir(&dir, agent_socket)?;
    let docker = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        let mut cmd = Command::new("docker");
        cmd.args(args);
        if let Some(h) = docker_host {
            cmd.env("DOCKER_HOST", h);
        }
        cmd.output()
            .context("cannot run the docker command (is Docker installed?)")
    };
    // A plugin of that name from an earlier install goes first.
    let _ = docker(&["plugin", "disable", "--force", name]);
    let _ = docker(&["plugin", "rm", "--force", name]);
    let dir_text = dir.display().to_string();
    for args in [
        vec!["plugin", "create", name, dir_text.as_str()],
        vec!["plugin", "enable", name],
    ] {
        let out = docker(&args)?;
        if !out.status.success() {
            bail!(
                "docker {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}
