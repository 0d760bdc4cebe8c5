//! A linearizability checker for histories of concurrent operations, and a recorder
//! that builds such histories from concurrent clients.
//!
//! ```text
//!  clients ─invoke/ok/unknown─▶ Recorder ─history()─▶ [Operation] ─check(model)─▶ Verdict
//! ```
//! The search is Wing and Gong's, with Lowe's just-in-time linearisation and Porcupine's
//! improvements: a memo of (set of linearised operations, model state) pairs already
//! explored, and P-compositionality: operations on different keys are checked
//! separately ([`Model::key`]).
//!
//! An operation whose outcome is unknown (a timeout: Jepsen's `:info`) may take effect
//! at any time after its call, or never: it is given a return after everything else
//! and any output, so it may be placed anywhere after its call, including at the very
//! end where nothing observes it.
//!
//! - [`check`]: the search; [`Verdict`] says what it found.
//! - [`kv`]: models of a register and of named objects (create, update, read, delete).
//! - [`Recorder`]: thread-safe recording of invocations and outcomes in real-time order.

mod check;
pub mod kv;
mod record;

use std::fmt::Debug;
use std::hash::Hash;

pub use check::{check, check_with, Options, Verdict, Violation};
pub use record::{OpId, Recorder};

/// A sequential specification: what each operation does to the state, and which
/// outputs it may give.
pub trait Model {
    /// The state of one partition (one key).
    type State: Clone + Eq + Hash + Debug;
    /// What a client asked.
    type Input: Debug;
    /// What it was told.
    type Output: Debug;
    /// The partition an operation belongs to; operations on different keys never
    /// constrain each other.
    type Key: Ord + Clone + Debug;

    /// The state of every partition before the first operation.
    fn init(&self) -> Self::State;

    /// The partition of `input`.
    fn key(&self, input: &Self::Input) -> Self::Key;

    /// Applies `input` to `state`: the next state if `output` is a possible answer
    /// (`None`: the outcome is unknown, any answer is possible), or `None` if it is not.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<O> {
    /// It returned `output` at time `at`.
    Returned {
        /// When it returned (same clock as the call).
        at: u64,
        /// What it returned.
        output: O,
    },
    /// It timed out or its connection broke: it may or may not have taken effect, at
    /// any time after its call.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// Which client ran it (a client runs one operation at a time).
    pub client: u64,
    /// What was asked.
    pub input: I,
    /// When it was called: any clock (or event counter) shared by all clients.
    pub call: u64,
    /// How it ended.
    pub outcome: Outcome<O>,
}

impl<I, O> Operation<I, O> {
    /// An operation that returned.
    pub fn returned(client: u64, input: I, call: u64, ret: u64, output: O) -> Self {
        Operation {
            client,
            input,
            call,
            outcome: Outcome::Returned { at: ret, output },
        }
    }

    /// An operation whose outcome is unknown.
    pub fn unknown(client: u64, input: I, call: u64) -> Self {
        Operation {
            client,
            input,
            call,
            outcome: Outcome::Unknown,
        }
    }

    /// When it returned: the end of time if it is unknown.
    pub fn ret(&self) -> u64 {
        match &self.outcome {
            Outcome::Returned { at, .. } => *at,
            Outcome::Unknown => u64::MAX,
        }
    }

    /// What it returned, if known.
    pub fn output(&self) -> Option<&O> {
        match &self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Unknown => None,
        }
    }
}
