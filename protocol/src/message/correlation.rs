//! Pending requests and their deadlines.
//!
//! Two ordered maps, so every walk is deterministic: the pending ids with their deadlines, and
//! the deadlines with their ids (earliest first, ties by id) for finding what expires next in
//! O(log n). A deadline is inclusive: a request whose deadline is `t` has timed out *at* `t`,
//! and an answer arriving at `t` is late.

use alloc::collections::{BTreeMap, BTreeSet};

use crate::time::Instant;

/// What [`Correlation::complete`] found for an answered id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Completion {
    /// The request was pending and its deadline not reached: deliver the answer.
    OnTime,
    /// The request was pending but its deadline has passed: the answer is late, not a success.
    /// (Only when [`Correlation::pop_expired`] was not called first for this `now`.)
    Late,
    /// No such request is pending: it timed out earlier, was already answered, or never existed.
    NotPending,
}

/// The table of requests waiting for an answer.
#[derive(Clone, Debug, Default)]
pub struct Correlation {
    /// Pending id → its deadline (`None`: waits forever).
    pending: BTreeMap<u64, Option<Instant>>,
    /// (deadline, id) of every pending request that has one.
    deadlines: BTreeSet<(Instant, u64)>,
}

impl Correlation {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start waiting for an answer to `id` until `deadline` (`None`: no deadline). Replaces the
    /// deadline if `id` was already pending.
    pub fn insert(&mut self, id: u64, deadline: Option<Instant>) {
        if let Some(Some(old)) = self.pending.insert(id, deadline) {
            self.deadlines.remove(&(old, id));
        }
        if let Some(t) = deadline {
            self.deadlines.insert((t, id));
        }
    }

    /// An answer to `id` arrived at `now`: stop waiting for it and say whether it is on time.
    pub fn complete(&mut self, now: Instant, id: u64) -> Completion {
        match self.pending.remove(&id) {
            None => Completion::NotPending,
            Some(None) => Completion::OnTime,
            Some(Some(t)) => {
                self.deadlines.remove(&(t, id));
                if now >= t {
                    Completion::Late
                } else {
                    Completion::OnTime
                }
            }
        }
    }

    /// Remove and return the request whose deadline passed first, if any has by `now`. Call
    /// until `None` to collect every timeout, in deadline order (ties by id).
    pub fn pop_expired(&mut self, now: Instant) -> Option<u64> {
        let &(t, id) = self.deadlines.first()?;
        if t > now {
            return None;
        }
        self.deadlines.remove(&(t, id));
        self.pending.remove(&id);
        Some(id)
    }

    /// Stop waiting for `id` without an answer. Returns whether it was pending.
    pub fn cancel(&mut self, id: u64) -> bool {
        match self.pending.remove(&id) {
            None => false,
            Some(deadline) => {
                if let Some(t) = deadline {
                    self.deadlines.remove(&(t, id));
                }
                true
            }
        }
    }

    /// The earliest deadline of any pending request.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(t, _)| t)
    }

    /// Whether `id` is waiting for an answer.
    pub fn contains(&self, id: u64) -> bool {
        self.pending.contains_key(&id)
    }

    /// The deadline of pending request `id`: `None` if not pending, `Some(None)` if it has none.
    pub fn deadline(&self, id: u64) -> Option<Option<Instant>> {
        self.pending.get(&id).copied()
    }

    /// Pending ids in ascending order.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.keys().copied()
    }

    /// How many requests are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_deadline_order_at_the_deadline() {
        let mut table = Correlation::new();
        table.insert(1, Some(Instant::from_millis(30)));
        table.insert(2, Some(Instant::from_millis(10)));
        table.insert(3, None);
        table.insert(4, Some(Instant::from_millis(10)));
        assert_eq!(table.next_deadline(), Some(Instant::from_millis(10)));
        assert_eq!(table.pop_expired(Instant::from_nanos(9_999_999)), None);
        assert_eq!(table.pop_expired(Instant::from_millis(10)), Some(2));
        assert_eq!(table.pop_expired(Instant::from_millis(10)), Some(4));
        assert_eq!(table.pop_expired(Instant::from_millis(10)), None);
        assert_eq!(table.complete(Instant::from_millis(30), 1), Completion::Late);
        assert_eq!(table.complete(Instant::from_millis(30), 3), Completion::OnTime);
        assert_eq!(table.complete(Instant::from_millis(30), 3), Completion::NotPending);
        assert!(table.is_empty() && table.next_deadline().is_none());
    }

    #[test]
    fn reinsert_replaces_the_deadline() {
        let mut table = Correlation::new();
        table.insert(1, Some(Instant::from_millis(5)));
        table.insert(1, Some(Instant::from_millis(50)));
        assert_eq!(table.pop_expired(Instant::from_millis(5)), None);
        assert_eq!(table.deadline(1), Some(Some(Instant::from_millis(50))));
        assert!(table.cancel(1) && !table.cancel(1));
        assert_eq!(table.next_deadline(), None);
    }
}
