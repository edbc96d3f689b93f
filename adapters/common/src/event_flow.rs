//! When has an application answered the events before the peer's end of stream?
//!
//! A driver that hands events to the application through a queue (the async channel driver,
//! the std `spawn` driver) must not feed the peer's EOF to the machine while the application
//! may still be answering the events before it: a machine that finishes at EOF would refuse the
//! answers. [`EventFlow`] counts the events put into the queue and taken from it, and records
//! when the application last found the queue empty. Once it has taken everything put and asked
//! for more, it has sent whatever it sends in answer (sends come before the next receive), so
//! the driver takes the commands waiting and then feeds the EOF.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Shared by a driver and the application's event receiver. See the [module docs](self).
#[derive(Debug, Default)]
pub struct EventFlow {
    put: AtomicU64,
    taken: AtomicU64,
    /// 1 + `taken` when the application last found the queue empty (0: never).
    idle_after: AtomicU64,
    /// The application dropped its receiver: nobody answers any more.
    gone: AtomicBool,
    /// The driver waits for [`idle`](Self::idle) and wants to be woken.
    waits: AtomicBool,
}

impl EventFlow {
    /// Driver: one event goes into the queue. Counted before it can be taken, so the
    /// application is never idle "after" an event it has not seen.
    pub fn put(&self) {
        self.put.fetch_add(1, Ordering::SeqCst);
    }

    /// Application: one event taken.
    pub fn took(&self) {
        self.taken.fetch_add(1, Ordering::SeqCst);
    }

    /// Application: the queue was empty. Returns whether the driver waits for this (wake it).
    #[must_use]
    pub fn found_empty(&self) -> bool {
        let taken = self.taken.load(Ordering::SeqCst);
        self.idle_after.store(taken + 1, Ordering::SeqCst);
        self.waits.load(Ordering::SeqCst)
    }

    /// Application: the receiver is dropped. Returns whether the driver waits (wake it).
    #[must_use]
    pub fn receiver_gone(&self) -> bool {
        self.gone.store(true, Ordering::SeqCst);
        self.waits.load(Ordering::SeqCst)
    }

    /// Driver: whether the application has taken every event put and asked for more since (or
    /// dropped its receiver). Not idle: [`found_empty`](Self::found_empty) and
    /// [`receiver_gone`](Self::receiver_gone) ask for a wake-up from now on, so arrange how to be
    /// woken before calling this.
    pub fn idle(&self) -> bool {
        // Announced before looking: an application finding the queue empty meanwhile either
        // is seen here or sees this and wakes the driver (both sides store, then load).
        self.waits.store(true, Ordering::SeqCst);
        let idle = self.gone.load(Ordering::SeqCst)
            || self.idle_after.load(Ordering::SeqCst) > self.put.load(Ordering::SeqCst);
        if idle {
            self.waits.store(false, Ordering::SeqCst);
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::EventFlow;

    #[test]
    fn idle_only_after_taking_everything_put_and_asking_again() {
        let flow = EventFlow::default();
        assert!(!flow.idle(), "never asked");
        assert!(flow.found_empty(), "the driver waits: wake it");
        assert!(flow.idle(), "nothing put, asked");
        flow.put();
        flow.put();
        assert!(!flow.idle(), "two events not taken");
        flow.took();
        flow.took();
        assert!(!flow.idle(), "taken, but not asked again: may still be answering");
        assert!(flow.found_empty());
        assert!(flow.idle());
        assert!(!flow.found_empty(), "the driver no longer waits");
    }

    #[test]
    fn a_stale_empty_does_not_count_for_later_events() {
        let flow = EventFlow::default();
        let _ = flow.found_empty();
        flow.put();
        assert!(!flow.idle(), "asked before the event came");
        flow.took();
        assert!(!flow.idle());
        let _ = flow.found_empty();
        assert!(flow.idle());
    }

    #[test]
    fn a_dropped_receiver_is_idle() {
        let flow = EventFlow::default();
        flow.put();
        assert!(!flow.idle());
        assert!(flow.receiver_gone(), "the driver waits: wake it");
        assert!(flow.idle());
    }
}
