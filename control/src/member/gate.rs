//! Who may call which control endpoint, decided from the TLS session before a byte of
//! the body is read; and how much body each may send.
//!
//! | path | caller | body limit |
//! | --- | --- | --- |
//! | `/v1/join` | anyone (a join token in the body), rate-limited per address | [`JOIN_BODY`] |
//! | `/v1/leader`, `/v1/watch` | a member (verified certificate, not removed) | [`MEMBER_BODY`] |
//! | `/raft/*` | a manager | [`RAFT_BODY`] |

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::routes::error_response;
use super::Member;
use crate::ratelimit::{Rate, RateLimiter};
use crate::server::Caller;
use crate::transport::ErrorBody;

/// A join request is a token, a CSR and a few names: a few KB at most.
pub const JOIN_BODY: usize = 16 << 10;
/// Forwarded requests (a service spec with its labels, a network) from members.
pub const MEMBER_BODY: usize = 4 << 20;
/// Raft messages between managers; snapshots carry the whole state.
pub const RAFT_BODY: usize = 64 << 20;

/// Joins per second from one address, and its burst.
const JOIN_PER_CLIENT: Rate = Rate {
    per_second: 2.0,
    burst: 10.0,
};
/// Joins per second from everyone together, and the burst.
const JOIN_OVERALL: Rate = Rate {
    per_second: 50.0,
    burst: 100.0,
};
/// Addresses whose join rate is tracked.
const JOIN_CLIENTS: usize = 4096;

/// Who may call a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the handler checks the join token.
    Anyone,
    /// A member of the cluster.
    Member,
    /// A manager.
    Manager,
}

/// The access rule of `path`; unknown paths need a member (they get 404 after that).
pub fn access(path: &str) -> Access {
    if path == "/v1/join" {
        Access::Anyone
    } else if path.starts_with("/raft/") {
        Access::Manager
    } else {
        Access::Member
    }
}

/// The join endpoint's rate limiter.
pub fn join_limiter() -> Mutex<RateLimiter> {
    Mutex::new(RateLimiter::new(
        JOIN_PER_CLIENT,
        JOIN_OVERALL,
        JOIN_CLIENTS,
    ))
}

/// The middleware: refuses a caller the path is not for, before the body is read.
pub async fn gate(State(m): State<Arc<Member>>, req: Request, next: Next) -> Response {
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or(Caller(None));
    let verdict = match access(req.uri().path()) {
        Access::Anyone => {
            let client = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
            let admitted = m
                .join_limiter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(client, Instant::now());
            if let Err(wait) = admitted {
                return too_many(wait);
            }
            Ok(())
        }
        Access::Member => m.member_caller(&caller).map(drop),
        Access::Manager => m.raft_caller(&caller).map(drop),
    };
    match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => error_response(&e),
    }
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(ErrorBody {
            error: format!("too many join requests from this address; retry in {secs} s"),
        }),
    )
        .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_join_is_open_and_raft_is_for_managers() {
        assert_eq!(access("/v1/join"), Access::Anyone);
        assert_eq!(access("/v1/join/"), Access::Member);
        assert_eq!(access("/v1/leader"), Access::Member);
        assert_eq!(access("/v1/watch"), Access::Member);
        assert_eq!(access("/raft/append"), Access::Manager);
        assert_eq!(access("/anything"), Access::Member);
    }
}
