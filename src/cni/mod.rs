//! shoal's CNI plugin (spec 1.1: ADD, DEL, CHECK, STATUS, VERSION, GC): the shoal
//! binary, run under the name a network config's `type` gives, reads the CNI_*
//! environment and the request configuration, asks the local agent, and answers on
//! stdout. Everything but `plugin` (the IO: env, stdin, the agent's socket, netlink)
//! and `install` (files) is pure.
//!
//! ```text
//!  env map ──▶ env::Invocation::from_env ─┐
//!  stdin  ───▶ config::NetworkConfig::parse┴▶ decide::* (with agent records and
//!              (VERSION: version::version_reply)   sandbox observations as data)
//!                                              ──▶ result::CniResult::to_json(version)
//!                                                  or CniError::reply(version)
//! ```
//!
//! Versions: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0 (see `version`). Errors carry the
//! spec's well-known codes (see `error`).

pub mod agent;
pub mod config;
pub mod decide;
pub mod env;
pub mod error;
pub mod install;
pub mod plugin;
pub mod result;
pub mod runtime;
pub mod version;
