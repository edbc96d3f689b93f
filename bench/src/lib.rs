//! Shared pieces of the Switchboard benchmarks: workload sizes, timing and the report table.
//!
//! The benchmarks are binaries in `src/bin/`, run by hand in release mode; they print what they
//! measured and the ratios against the raw baseline and the peer measured in the same run.
//!
//! ```
//! use std::time::Duration;
//! use switchboard_bench::{frames_for, Measurement};
//!
//! let frames = frames_for(1024, 64 << 20, 1_000, 100_000); // ~64 MiB of 1 KiB frames
//! let m = Measurement { name: "raw".into(), size: 1024, frames, elapsed: Duration::from_millis(50) };
//! assert!(m.rate() > 0.0 && m.mb_per_s() > 0.0);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::{Duration, Instant};

/// One measured run.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// What ran ("raw", "tokio-util", "switchboard-std", …).
    pub name: String,
    /// Frame body size in bytes.
    pub size: usize,
    /// Frames delivered.
    pub frames: u64,
    /// The timed span (each benchmark's doc says where its clock starts and stops).
    pub elapsed: Duration,
}

impl Measurement {
    /// Frames per second.
    pub fn rate(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64()
    }

    /// Payload megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        (self.frames as f64 * self.size as f64) / self.elapsed.as_secs_f64() / 1e6
    }
}

/// How many frames to send at `size` so each run moves a comparable amount of data and lasts
/// long enough to measure (at least `min_frames`, at most `max_frames`).
pub fn frames_for(size: usize, total_bytes: u64, min_frames: u64, max_frames: u64) -> u64 {
    (total_bytes / (size as u64 + 4)).clamp(min_frames, max_frames)
}

/// Run `f` and time it.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// The best (fastest) of several runs, so a noisy moment does not decide the figure.
pub fn best_of(runs: usize, mut f: impl FnMut() -> Measurement) -> Measurement {
    (0..runs).map(|_| f()).max_by(|a, b| a.rate().total_cmp(&b.rate())).expect("at least one run")
}

/// Print a table of measurements grouped by size, with each one's ratio to `baseline` and `peer`.
pub fn print_table(results: &[Measurement], baseline: &str, peer: &str) {
    println!(
        "{:<22} {:>8} {:>10} {:>14} {:>10} {:>10} {:>10}",
        "implementation", "size", "frames", "msg/s", "MB/s", "÷ raw", "÷ peer"
    );
    let mut sizes: Vec<usize> = results.iter().map(|m| m.size).collect();
    sizes.dedup();
    for size in sizes {
        let rate_of = |name: &str| results.iter().find(|m| m.size == size && m.name == name).map(Measurement::rate);
        for m in results.iter().filter(|m| m.size == size) {
            let ratio = |other: Option<f64>| other.map_or("-".to_string(), |o| format!("{:.2}×", m.rate() / o));
            println!(
                "{:<22} {:>8} {:>10} {:>14.0} {:>10.1} {:>10} {:>10}",
                m.name,
                m.size,
                m.frames,
                m.rate(),
                m.mb_per_s(),
                ratio(rate_of(baseline)),
                ratio(rate_of(peer)),
            );
        }
    }
}

/// The smallest, middle and largest of several figures (one per round).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Some(Spread { min: v[0], median, max: v[n - 1] })
    }
}

/// A small seeded generator (SplitMix64), so a benchmark can shuffle its run order and the same
/// seed gives the same order again.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Shuffle `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_min_median_max() {
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(Spread::of(&[3.0, 1.0, 2.0]), Some(Spread { min: 1.0, median: 2.0, max: 3.0 }));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]), Some(Spread { min: 1.0, median: 2.5, max: 4.0 }));
    }

    #[test]
    fn shuffles_are_permutations_and_repeat_with_the_seed() {
        let shuffled = |seed| {
            let mut v: Vec<u32> = (0..19).collect();
            SplitMix64::new(seed).shuffle(&mut v);
            v
        };
        let mut sorted = shuffled(7);
        assert_eq!(shuffled(7), sorted);
        assert_ne!(shuffled(8), sorted);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..19).collect::<Vec<_>>());
    }

    #[test]
    fn frame_counts_are_clamped() {
        assert_eq!(frames_for(64, 68 * 1000, 10, 100), 100);
        assert_eq!(frames_for(65536, 1, 10, 100), 10);
        assert_eq!(frames_for(1020, 1024 * 50, 10, 100), 50);
    }
}
