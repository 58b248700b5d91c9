//! Rate-limited logging for floods (packets from unknown sources, shed
//! requests): the first event of a window is logged, the rest are counted
//! and reported with the next logged event. Sans-I/O: the caller passes the clock.

use std::time::{Duration, Instant};

/// Allows one log line per `window`.
#[derive(Debug)]
pub struct LogLimiter {
    window: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// A limiter allowing one line per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged now (`n` events were suppressed
    /// since the previous line), `None` when this event is only counted.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.window => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_window() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(Duration::from_secs(10));
        assert_eq!(l.allow(t0), Some(0));
        for s in 1..10 {
            assert_eq!(l.allow(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(l.allow(t0 + Duration::from_secs(10)), Some(9));
        assert_eq!(l.allow(t0 + Duration::from_secs(11)), None);
    }
}
