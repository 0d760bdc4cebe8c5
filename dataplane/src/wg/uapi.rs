//! WireGuard's cross-platform userspace API (UAPI), read-only, as plain logic: the
//! text a `get=1` is answered with, made from the engine's peer snapshot, and the
//! conversation a client holds on the socket. The agent's thin server feeds it lines.
//!
//! ```text
//!  wg show ──"get=1\n\n"──▶ Conversation::line ─▶ Action::Get ─▶ get_response(device, now)
//!  wg set  ──"set=1\n…\n\n"─▶ Conversation::line ─▶ Action::Refuse(errno=-EPERM)
//! ```
//! The private key is never sent: `wg show` then prints no private (nor public) key for
//! the interface and `wg showconf` no `PrivateKey` line. Keys are hex, as UAPI wants.
//! Errors are sent as wireguard-go sends them, `errno=-N` with N a Linux errno.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::engine::PeerStats;
use super::keys::public_from_base64;

/// The longest request line accepted, newline excluded (the longest valid UAPI line,
/// an IPv6 endpoint with a zone, is well under 200 bytes).
pub const MAX_LINE: usize = 1024;
/// The most lines a `set=1` request may carry before the connection is closed.
pub const MAX_SET_LINES: usize = 65_536;

/// Operation not permitted: `set=1` on a read-only device.
pub const EPERM: i32 = 1;
/// Invalid argument: a malformed request.
pub const EINVAL: i32 = 22;
/// Protocol error: a request that is not UAPI at all.
pub const EPROTO: i32 = 71;

/// The keys a `set=1` request may carry (wireguard-go's list).
const SET_KEYS: &[&str] = &[
    "private_key",
    "listen_port",
    "fwmark",
    "replace_peers",
    "public_key",
    "remove",
    "update_only",
    "preshared_key",
    "endpoint",
    "persistent_keepalive_interval",
    "replace_allowed_ips",
    "allowed_ip",
    "protocol_version",
];

/// What a `get=1` describes: the device and its peers.
#[derive(Debug, Clone)]
pub struct Device<'a> {
    /// The WireGuard UDP port.
    pub listen_port: u16,
    /// The firewall mark on the WireGuard socket, if any.
    pub fwmark: Option<u32>,
    /// Every peer.
    pub peers: &'a [PeerStats],
}

/// The answer to `get=1` at wall-clock time `now`, ending in `errno=0` and a blank line.
/// A peer whose key does not decode is left out (the engine never holds one).
pub fn get_response(device: &Device<'_>, now: SystemTime) -> String {
    let mut out = format!("listen_port={}\n", device.listen_port);
    if let Some(mark) = device.fwmark.filter(|m| *m != 0) {
        let _ = writeln!(out, "fwmark={mark}");
    }
    for p in device.peers {
        let Ok(key) = public_from_base64(&p.public_key) else {
            continue;
        };
        let (sec, nsec) = handshake_time(p.last_handshake, now);
        let _ = writeln!(out, "public_key={}", hex(key.as_bytes()));
        let _ = writeln!(out, "protocol_version=1");
        let _ = writeln!(out, "endpoint={}", p.endpoint);
        let _ = writeln!(out, "last_handshake_time_sec={sec}");
        let _ = writeln!(out, "last_handshake_time_nsec={nsec}");
        let _ = writeln!(out, "tx_bytes={}", p.tx_bytes);
        let _ = writeln!(out, "rx_bytes={}", p.rx_bytes);
        let _ = writeln!(
            out,
            "persistent_keepalive_interval={}",
            p.keepalive.unwrap_or(0)
        );
        let _ = writeln!(out, "allowed_ip={}/32", p.mesh_ip);
    }
    out.push_str("errno=0\n\n");
    out
}

/// The UNIX time of a handshake `age` before `now`; 0/0 for none (as WireGuard says
/// "never").
fn handshake_time(age: Option<Duration>, now: SystemTime) -> (u64, u32) {
    age.and_then(|a| now.checked_sub(a))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| (d.as_secs(), d.subsec_nanos()))
        .unwrap_or((0, 0))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The reply to a request that is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The (positive) errno; sent negated, as wireguard-go does.
    pub errno: i32,
    /// Why, for the agent's log.
    pub reason: String,
    /// Whether the connection is closed after the reply.
    pub close: bool,
}

impl Refusal {
    /// The reply's text.
    pub fn reply(&self) -> String {
        format!("errno=-{}\n\n", self.errno)
    }
}

/// What the server does after a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read another line.
    Read,
    /// Answer with [`get_response`].
    Get,
    /// Answer with [`Refusal::reply`].
    Refuse(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for `get=1` or `set=1`.
    Idle,
    /// `get=1` read; a blank line must follow.
    Get,
    /// In a `set=1`: lines so far, and whether one was malformed.
    Set { lines: usize, malformed: bool },
}

/// One client's conversation: fed lines (without their newline), says what to do.
#[derive(Debug, Clone)]
pub struct Conversation {
    state: State,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation { state: State::Idle }
    }
}

fn refuse(errno: i32, reason: impl Into<String>, close: bool) -> Action {
    Action::Refuse(Refusal {
        errno,
        reason: reason.into(),
        close,
    })
}

impl Conversation {
    /// A line longer than [`MAX_LINE`] arrived: refused, and the connection closed.
    pub fn too_long(&mut self) -> Action {
        self.state = State::Idle;
        refuse(
            EINVAL,
            format!("a request line is longer than {MAX_LINE} bytes"),
            true,
        )
    }

    /// The next line of the request, without its newline.
    pub fn line(&mut self, line: &[u8]) -> Action {
        let Ok(line) = std::str::from_utf8(line) else {
            self.state = State::Idle;
            return refuse(EPROTO, "a request line is not UTF-8", true);
        };
        match self.state {
            State::Idle => match line {
                "get=1" => {
                    self.state = State::Get;
                    Action::Read
                }
                "set=1" => {
                    self.state = State::Set {
                        lines: 0,
                        malformed: false,
                    };
                    Action::Read
                }
                _ => refuse(
                    EPROTO,
                    format!("unknown operation {:?} (want get=1 or set=1)", clip(line)),
                    true,
                ),
            },
            State::Get if line.is_empty() => {
                self.state = State::Idle;
                Action::Get
            }
            State::Get => {
                self.state = State::Idle;
                refuse(
                    EINVAL,
                    format!("{:?} after get=1 (want a blank line)", clip(line)),
                    true,
                )
            }
            State::Set { malformed, .. } if line.is_empty() => {
                self.state = State::Idle;
                if malformed {
                    refuse(EINVAL, "a malformed set=1 request", false)
                } else {
                    refuse(
                        EPERM,
                        "set=1 refused: shoal's WireGuard is read-only, the cluster configures it",
                        false,
                    )
                }
            }
            State::Set { lines, malformed } => {
                if lines + 1 >= MAX_SET_LINES {
                    self.state = State::Idle;
                    return refuse(
                        EINVAL,
                        format!("a set=1 request of more than {MAX_SET_LINES} lines"),
                        true,
                    );
                }
                let known = line
                    .split_once('=')
                    .is_some_and(|(k, _)| SET_KEYS.contains(&k));
                self.state = State::Set {
                    lines: lines + 1,
                    malformed: malformed || !known,
                };
                Action::Read
            }
        }
    }
}

/// At most 40 characters of a client's line, for the log.
fn clip(line: &str) -> &str {
    line.char_indices()
        .nth(40)
        .map(|(i, _)| &line[..i])
        .unwrap_or(line)
}

#[cfg(test)]
mod tests;
