//! Request id allocation (WIRE.md §4: per connection and direction, starting at 1).

/// Hands out request ids 1, 2, 3, … for one connection and direction. Never 0: 0 is what
/// notifications carry and what an error unrelated to any request carries, so an answer with
/// id 0 can never be mistaken for the answer to a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestIds {
    /// The id the next allocation returns (never 0).
    next: u64,
    /// The first id this allocator handed out; ids below it were never issued (until a wrap).
    first: u64,
    /// Whether the counter went past `u64::MAX` back to 1: from then on every non-zero id may
    /// have been issued.
    wrapped: bool,
}

impl RequestIds {
    /// An allocator whose first id is 1.
    pub const fn new() -> Self {
        Self::starting_at(1)
    }

    /// An allocator whose first id is `first` (0 is taken as 1). Lets tests reach the wrap.
    pub const fn starting_at(first: u64) -> Self {
        let first = if first == 0 { 1 } else { first };
        RequestIds { next: first, first, wrapped: false }
    }

    /// The id the next [`allocate`](Self::allocate) returns.
    pub const fn peek(&self) -> u64 {
        self.next
    }

    /// Take the next id. After `u64::MAX` comes 1, skipping 0.
    pub fn allocate(&mut self) -> u64 {
        let id = self.next;
        self.next = match id.checked_add(1) {
            Some(next) => next,
            None => {
                self.wrapped = true;
                1
            }
        };
        id
    }

    /// Whether `id` was handed out by this allocator. An answer for an id that was issued but
    /// is no longer pending is late; one for an id never issued is unsolicited.
    pub const fn was_issued(&self, id: u64) -> bool {
        id != 0 && (self.wrapped || (id >= self.first && id < self.next))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_at_one_and_skips_zero_on_wrap() {
        let mut ids = RequestIds::new();
        assert!(!ids.was_issued(1));
        assert_eq!((ids.allocate(), ids.allocate()), (1, 2));
        assert!(ids.was_issued(2) && !ids.was_issued(3) && !ids.was_issued(0));

        let mut ids = RequestIds::starting_at(u64::MAX);
        assert_eq!((ids.allocate(), ids.allocate()), (u64::MAX, 1));
        assert!(ids.was_issued(7) && !ids.was_issued(0));
    }
}
