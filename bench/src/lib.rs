//! shoal's benchmarks: the measuring parts that do not need a cluster.
//!
//! - [`stats`]: latency summaries (percentiles).
//! - [`report`]: a table of figures, each a ratio against a baseline of the same run,
//!   printed for people and written as JSON.
//! - [`baseline`]: baselines that need no peer (the disk's fsync latency).
//! - [`browser`]: headless Chromium driven over the DevTools protocol on a pipe.
//! - [`net`]: TCP throughput and round trips between network namespaces.
//! - [`dns`]: a closed-loop DNS load generator.
//!
//! The orchestration (labs, agents) lives in the `shoal` binary's `bench` module.

pub mod baseline;
pub mod browser;
pub mod dns;
pub mod net;
pub mod report;
pub mod stats;
