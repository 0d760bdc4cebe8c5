//! Load balancing: smooth weighted round robin (nginx), power of two choices on
//! outstanding requests, and Træfik-style sticky cookies. Pure: the caller passes the
//! hosts' weights, loads and eligibility and a random source.
//!
//! ```text
//!  eligible (not ejected, or panic) ∧ not yet tried by this request
//!      │ (if empty: eligible, so a lone host can still be retried)
//!      ▼
//!  sticky cookie names an allowed host? ── yes ─▶ that host
//!      │ no
//!      ▼
//!  Wrr: highest current weight │ P2c: less loaded of two random hosts
//! ```

use std::net::SocketAddr;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How a service spreads requests over its servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbAlgorithm {
    /// Smooth weighted round robin.
    #[default]
    Wrr,
    /// Power of two choices on outstanding requests.
    P2c,
}

impl std::str::FromStr for LbAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wrr" | "roundrobin" | "round_robin" => Ok(LbAlgorithm::Wrr),
            "p2c" => Ok(LbAlgorithm::P2c),
            other => Err(format!(
                "unknown load-balancing strategy `{other}`, expected wrr or p2c"
            )),
        }
    }
}

/// What the balancer may know about each host, index-aligned.
#[derive(Debug, Clone, Copy)]
pub struct Candidates<'a> {
    /// Configured weights (≥ 1).
    pub weights: &'a [u32],
    /// Requests in flight per host.
    pub outstanding: &'a [usize],
    /// Hosts not ejected (or all, in panic mode).
    pub eligible: &'a [bool],
    /// Hosts this request already tried.
    pub tried: &'a [bool],
    /// Host named by the request's sticky cookie, if any.
    pub sticky: Option<usize>,
}

/// Smooth weighted round robin state (nginx's algorithm).
#[derive(Debug, Clone, Default)]
pub struct SmoothWrr {
    current: Vec<i64>,
}

impl SmoothWrr {
    /// Among `allowed` hosts, raise each current weight by its weight, pick the highest,
    /// lower it by the allowed total.
    pub fn pick(&mut self, weights: &[u32], allowed: &[bool]) -> Option<usize> {
        if self.current.len() != weights.len() {
            self.current = vec![0; weights.len()];
        }
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (i, w) in weights.iter().enumerate() {
            if !allowed.get(i).copied().unwrap_or(false) {
                continue;
            }
            let w = i64::from(*w);
            self.current[i] += w;
            total += w;
            if best.is_none_or(|b| self.current[i] > self.current[b]) {
                best = Some(i);
            }
        }
        let b = best?;
        self.current[b] -= total;
        Some(b)
    }
}

/// Choose a host; `None` when no host is eligible.
pub fn choose(
    algorithm: LbAlgorithm,
    wrr: &mut SmoothWrr,
    c: Candidates<'_>,
    rng: &mut impl Rng,
) -> Option<usize> {
    let n = c.weights.len();
    let eligible = |i: usize| c.eligible.get(i).copied().unwrap_or(false);
    let untried: Vec<bool> = (0..n)
        .map(|i| eligible(i) && !c.tried.get(i).copied().unwrap_or(false))
        .collect();
    let allowed = if untried.iter().any(|a| *a) {
        untried
    } else {
        (0..n).map(eligible).collect()
    };
    if let Some(s) = c
        .sticky
        .filter(|s| allowed.get(*s).copied().unwrap_or(false))
    {
        return Some(s);
    }
    match algorithm {
        LbAlgorithm::Wrr => wrr.pick(c.weights, &allowed),
        LbAlgorithm::P2c => {
            let pool: Vec<usize> = (0..n).filter(|i| allowed[*i]).collect();
            match pool.len() {
                0 => None,
                1 => Some(pool[0]),
                len => {
                    let a = rng.gen_range(0..len);
                    let mut b = rng.gen_range(0..len - 1);
                    if b >= a {
                        b += 1;
                    }
                    let load = |i: usize| c.outstanding.get(pool[i]).copied().unwrap_or(0);
                    Some(if load(b) < load(a) { pool[b] } else { pool[a] })
                }
            }
        }
    }
}

/// The sticky-cookie value naming `addr`: a hash, so backend addresses stay private.
pub fn sticky_value(addr: &SocketAddr) -> String {
    // FNV-1a, 64 bit: stable across processes and versions.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in addr.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The value of cookie `name` in `Cookie` header values, if present.
pub fn cookie_value<'a>(headers: impl Iterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(1)
    }

    fn pick_n(weights: &[u32], eligible: &[bool], n: usize) -> Vec<usize> {
        let mut wrr = SmoothWrr::default();
        let outstanding = vec![0; weights.len()];
        let tried = vec![false; weights.len()];
        (0..n)
            .map(|_| {
                let c = Candidates {
                    weights,
                    outstanding: &outstanding,
                    eligible,
                    tried: &tried,
                    sticky: None,
                };
                choose(LbAlgorithm::Wrr, &mut wrr, c, &mut rng()).unwrap()
            })
            .collect()
    }

    #[test]
    fn smooth_wrr_interleaves_by_weight() {
        // nginx's example: weights 5,1,1 give a a b a c a a.
        let picks = pick_n(&[5, 1, 1], &[true; 3], 7);
        assert_eq!(picks, vec![0, 0, 1, 0, 2, 0, 0]);
        let picks = pick_n(&[1, 1, 1], &[true, false, true], 4);
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn retries_avoid_tried_hosts_but_fall_back_to_them() {
        let mut wrr = SmoothWrr::default();
        let c = Candidates {
            weights: &[1, 1],
            outstanding: &[0, 0],
            eligible: &[true, true],
            tried: &[true, false],
            sticky: None,
        };
        for _ in 0..5 {
            assert_eq!(choose(LbAlgorithm::Wrr, &mut wrr, c, &mut rng()), Some(1));
            assert_eq!(choose(LbAlgorithm::P2c, &mut wrr, c, &mut rng()), Some(1));
        }
        let lone = Candidates {
            weights: &[1],
            outstanding: &[0],
            eligible: &[true],
            tried: &[true],
            sticky: None,
        };
        assert_eq!(
            choose(LbAlgorithm::Wrr, &mut wrr, lone, &mut rng()),
            Some(0)
        );
        let none = Candidates {
            eligible: &[false],
            ..lone
        };
        assert_eq!(choose(LbAlgorithm::P2c, &mut wrr, none, &mut rng()), None);
    }

    #[test]
    fn p2c_prefers_the_less_loaded_host() {
        let mut wrr = SmoothWrr::default();
        let c = Candidates {
            weights: &[1, 1],
            outstanding: &[9, 2],
            eligible: &[true, true],
            tried: &[false, false],
            sticky: None,
        };
        let mut r = rng();
        for _ in 0..20 {
            assert_eq!(choose(LbAlgorithm::P2c, &mut wrr, c, &mut r), Some(1));
        }
    }

    #[test]
    fn sticky_host_wins_unless_ineligible() {
        let mut wrr = SmoothWrr::default();
        let c = Candidates {
            weights: &[1, 1, 1],
            outstanding: &[0, 0, 0],
            eligible: &[true, true, true],
            tried: &[false; 3],
            sticky: Some(2),
        };
        for _ in 0..4 {
            assert_eq!(choose(LbAlgorithm::Wrr, &mut wrr, c, &mut rng()), Some(2));
        }
        let ejected = Candidates {
            eligible: &[true, true, false],
            ..c
        };
        assert_ne!(
            choose(LbAlgorithm::Wrr, &mut wrr, ejected, &mut rng()),
            Some(2)
        );
    }

    #[test]
    fn cookies_and_sticky_values() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:80".parse().unwrap();
        assert_eq!(sticky_value(&a), sticky_value(&a));
        assert_ne!(sticky_value(&a), sticky_value(&b));
        assert_eq!(sticky_value(&a).len(), 16);
        let headers = ["x=1; shoal_sticky=abc", "y=2"];
        assert_eq!(
            cookie_value(headers.into_iter(), "shoal_sticky"),
            Some("abc")
        );
        assert_eq!(cookie_value(headers.into_iter(), "y"), Some("2"));
        assert_eq!(cookie_value(headers.into_iter(), "z"), None);
    }
}
