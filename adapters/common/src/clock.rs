use std::sync::OnceLock;
use std::time::{Duration, Instant as StdInstant};

use switchboard_proto::{Entropy, Instant};

/// Where machine time starts on the wall clock: the first time this process asked.
static ORIGIN: OnceLock<StdInstant> = OnceLock::new();

fn origin() -> StdInstant {
    *ORIGIN.get_or_init(StdInstant::now)
}

/// The machines' time on the wall clock (monotonic): nanoseconds since this process first
/// asked. What [`Runtime::now`](crate::Runtime::now) returns unless a runtime keeps a clock of
/// its own (a simulator's virtual one).
pub fn wall_now() -> Instant {
    Instant::from_nanos(u64::try_from(origin().elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// The wall-clock instant of the machine time `at` (see [`wall_now`]), for a runtime's timers.
pub fn wall_to_std(at: Instant) -> StdInstant {
    origin() + Duration::from_nanos(at.as_nanos())
}

/// Turns the monotonic wall clock into machine time: nanoseconds since this clock was made.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: StdInstant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Clock { origin: StdInstant::now() }
    }

    /// The current machine time.
    pub fn now(&self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The std instant of a machine deadline, for runtime timers.
    pub fn to_std(&self, at: Instant) -> StdInstant {
        self.origin + Duration::from_nanos(at.as_nanos())
    }

    /// How long from now until `at` (zero if it has passed).
    pub fn until(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// The operating system's random source, for machines that take an [`Entropy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, dest: &mut [u8]) {
        // Without OS randomness nothing a machine does with these bytes would be sound.
        getrandom::fill(dest).expect("the operating system's random source failed");
    }
}
