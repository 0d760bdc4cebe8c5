//! Recording a history from concurrent clients: every invocation and return takes the
//! next tick of one counter, so the history's order is the real-time order in which the
//! recorder saw the events.

use std::sync::Mutex;

use crate::{Operation, Outcome};

/// An operation in flight, from [`Recorder::invoke`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an invoked operation must be finished with ok, unknown or failed"]
pub struct OpId(usize);

struct Slot<I, O> {
    client: u64,
    input: I,
    call: u64,
    /// `None` while in flight; `Some(None)` when it failed for certain (dropped).
    outcome: Option<Option<Outcome<O>>>,
}

struct Inner<I, O> {
    tick: u64,
    slots: Vec<Slot<I, O>>,
}

/// A thread-safe history recorder.
pub struct Recorder<I, O> {
    inner: Mutex<Inner<I, O>>,
}

impl<I, O> Default for Recorder<I, O> {
    fn default() -> Self {
        Recorder {
            inner: Mutex::new(Inner {
                tick: 0,
                slots: Vec::new(),
            }),
        }
    }
}

impl<I: Clone, O: Clone> Recorder<I, O> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<I, O>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `client` calls `input`, now. Call this just before sending it.
    pub fn invoke(&self, client: u64, input: I) -> OpId {
        let mut g = self.lock();
        g.tick += 1;
        let call = g.tick;
        g.slots.push(Slot {
            client,
            input,
            call,
            outcome: None,
        });
        OpId(g.slots.len() - 1)
    }

    fn finish(&self, id: OpId, outcome: Option<Outcome<O>>) {
        let mut g = self.lock();
        g.tick += 1;
        let at = g.tick;
        let outcome = outcome.map(|o| match o {
            Outcome::Returned { output, .. } => Outcome::Returned { at, output },
            Outcome::Unknown => Outcome::Unknown,
        });
        if let Some(slot) = g.slots.get_mut(id.0) {
            slot.outcome = Some(outcome);
        }
    }

    /// Records that the operation returned `output`, now.
    pub fn ok(&self, id: OpId, output: O) {
        self.finish(id, Some(Outcome::Returned { at: 0, output }));
    }

    /// Records that the operation's outcome is unknown (timeout, broken connection).
    pub fn unknown(&self, id: OpId) {
        self.finish(id, Some(Outcome::Unknown));
    }

    /// Records that the operation certainly did not take effect (refused before it was
    /// sent anywhere it could be applied): it is left out of the history.
    pub fn failed(&self, id: OpId) {
        self.finish(id, None);
    }

    /// The history so far; operations still in flight count as unknown.
    pub fn history(&self) -> Vec<Operation<I, O>> {
        let g = self.lock();
        g.slots
            .iter()
            .filter_map(|s| {
                let outcome = match &s.outcome {
                    None => Outcome::Unknown,
                    Some(None) => return None,
                    Some(Some(o)) => o.clone(),
                };
                Some(Operation {
                    client: s.client,
                    input: s.input.clone(),
                    call: s.call,
                    outcome,
                })
            })
            .collect()
    }

    /// How many operations were invoked.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether nothing was invoked yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_real_time_order_and_outcomes() {
        let r: Recorder<&str, u32> = Recorder::new();
        let a = r.invoke(1, "a");
        let b = r.invoke(2, "b");
        r.ok(b, 7);
        let c = r.invoke(2, "c");
        r.unknown(a);
        r.failed(c);
        let d = r.invoke(3, "d");
        let h = r.history();
        assert_eq!(h.len(), 3);
        assert_eq!(h[0], Operation::unknown(1, "a", 1));
        assert_eq!(h[1], Operation::returned(2, "b", 2, 3, 7));
        assert_eq!(h[2], Operation::unknown(3, "d", 7));
        assert_eq!(r.len(), 4);
        let _ = d;
    }
}
