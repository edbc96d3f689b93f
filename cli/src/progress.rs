//! The transfer clock: one start, taken when the peer connects, for the progress bar and the
//! final rate alike, so neither counts the time spent waiting for the peer.

use std::fmt;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Transfers at least this large get a progress bar (drawn on a terminal only).
pub const BAR_FROM: u64 = 8 * 1024 * 1024;

/// A running transfer's clock and, for large transfers, its progress bar on stderr.
#[derive(Debug)]
pub struct Meter {
    started: Instant,
    bar: Option<ProgressBar>,
}

impl Meter {
    /// Start the clock now: call it when the peer has connected. A bar for `total` bytes is
    /// shown when `bar` is set and the transfer is at least [`BAR_FROM`] (indicatif hides it
    /// when stderr is not a terminal).
    pub fn start(total: u64, bar: bool) -> Self {
        let bar = (bar && total >= BAR_FROM).then(|| {
            let bar = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{bytes}/{total_bytes} [{bar:30}] {binary_bytes_per_sec} eta {eta}")
                    .map(|s| s.progress_chars("=> "));
            if let Ok(style) = style {
                bar.set_style(style);
            }
            bar
        });
        Meter { started: Instant::now(), bar }
    }

    /// `done` bytes of the total have been transferred.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Remove the bar and say how long the transfer took.
    pub fn finish(self) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.elapsed()
    }
}

/// The final line: `sent 1000000 bytes in 0.004 s (250.0 MB/s)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// `sent` or `received`.
    pub verb: &'static str,
    /// Data bytes transferred.
    pub bytes: u64,
    /// From the peer's connection to the end.
    pub elapsed: Duration,
}

impl Summary {
    /// The rate in MB/s (10⁶ bytes per second); an instant transfer counts as a nanosecond.
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Summary { verb, bytes, elapsed } = self;
        let secs = elapsed.as_secs_f64();
        write!(f, "{verb} {bytes} bytes in {secs:.3} s ({:.1} MB/s)", self.megabytes_per_second())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_bytes_over_the_time_since_the_connection() {
        let summary = Summary { verb: "sent", bytes: 277_000_000, elapsed: Duration::from_secs(1) };
        assert_eq!(summary.megabytes_per_second(), 277.0);
        assert_eq!(summary.to_string(), "sent 277000000 bytes in 1.000 s (277.0 MB/s)");
        let quick = Summary { verb: "received", bytes: 5_000, elapsed: Duration::from_millis(2) };
        assert_eq!(quick.to_string(), "received 5000 bytes in 0.002 s (2.5 MB/s)");
        let instant = Summary { verb: "sent", bytes: 0, elapsed: Duration::ZERO };
        assert_eq!(instant.megabytes_per_second(), 0.0);
    }

    #[test]
    fn the_meter_and_its_bar_start_together() {
        let meter = Meter::start(BAR_FROM, true);
        let bar = meter.bar.clone().expect("a transfer of BAR_FROM bytes gets a bar");
        std::thread::sleep(Duration::from_millis(30));
        // The bar's own clock (behind its rate and eta) started with the meter, not before.
        let gap = meter.elapsed().abs_diff(bar.elapsed());
        assert!(gap < Duration::from_millis(10), "bar and meter clocks differ by {gap:?}");
        assert!(meter.finish() >= Duration::from_millis(30));
        assert!(Meter::start(BAR_FROM - 1, true).bar.is_none());
        assert!(Meter::start(BAR_FROM, false).bar.is_none());
    }
}
