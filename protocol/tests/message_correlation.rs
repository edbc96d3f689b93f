//! Request ids and the correlation table.

use quickcheck::quickcheck;
use switchboard_proto::message::{Completion, Correlation, RequestIds};
use switchboard_proto::Instant;

#[test]
fn ids_start_at_one_and_never_are_zero() {
    let mut ids = RequestIds::new();
    let first: Vec<u64> = (0..5).map(|_| ids.allocate()).collect();
    assert_eq!(first, [1, 2, 3, 4, 5]);

    let mut ids = RequestIds::starting_at(u64::MAX - 1);
    let wrapped: Vec<u64> = (0..4).map(|_| ids.allocate()).collect();
    assert_eq!(wrapped, [u64::MAX - 1, u64::MAX, 1, 2]);
    assert!(!ids.was_issued(0));
    assert_eq!(RequestIds::starting_at(0).peek(), 1);
}

#[test]
fn issued_means_allocated_before() {
    let mut ids = RequestIds::starting_at(10);
    assert!(!ids.was_issued(10));
    ids.allocate();
    assert!(ids.was_issued(10));
    assert!(!ids.was_issued(9) && !ids.was_issued(11));
}

/// Whatever the deadlines, every request times out exactly once, not before its deadline, and
/// in (deadline, id) order; answers to what already timed out are `NotPending`.
#[test]
fn every_deadline_fires_once_in_order() {
    fn prop(deadlines: Vec<Option<u16>>, checks: Vec<u16>) -> bool {
        let mut table = Correlation::new();
        for (i, d) in deadlines.iter().enumerate() {
            table.insert(i as u64 + 1, d.map(|t| Instant::from_millis(t.into())));
        }
        let mut times: Vec<u16> = checks;
        times.push(u16::MAX);
        times.sort_unstable();
        let mut fired = Vec::new();
        for t in times {
            let now = Instant::from_millis(t.into());
            while let Some(id) = table.pop_expired(now) {
                let deadline = deadlines[(id - 1) as usize].unwrap();
                if deadline > t {
                    return false;
                }
                fired.push((deadline, id));
            }
            if table.next_deadline().is_some_and(|d| d <= now) {
                return false;
            }
        }
        let mut expected: Vec<(u16, u64)> =
            deadlines.iter().enumerate().filter_map(|(i, d)| d.map(|d| (d, i as u64 + 1))).collect();
        expected.sort_unstable();
        let no_deadline = deadlines.iter().filter(|d| d.is_none()).count();
        let answers_ok = fired.iter().all(|&(_, id)| table.complete(Instant::ZERO, id) == Completion::NotPending);
        fired == expected && table.len() == no_deadline && answers_ok
    }
    quickcheck(prop as fn(Vec<Option<u16>>, Vec<u16>) -> bool);
}
