//! The registry's source of time, injectable so tests control it without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Current time in Unix seconds (UTC).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Unix seconds now.
    fn now(&self) -> u64;
}

/// The system clock; what the `twostep-api` binary always uses.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// A clock that stands still at a set time until moved; for tests.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    /// A clock showing `unix_time` seconds.
    pub fn new(unix_time: u64) -> Self {
        Self(Arc::new(AtomicI64::new(
            i64::try_from(unix_time).unwrap_or(i64::MAX),
        )))
    }

    /// Sets the time, in Unix seconds.
    pub fn set(&self, unix_time: u64) {
        self.0.store(
            i64::try_from(unix_time).unwrap_or(i64::MAX),
            Ordering::SeqCst,
        );
    }

    /// Moves the time forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.0
            .fetch_add(i64::try_from(seconds).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl FixedClock {
    /// The time shown, in Unix seconds.
    pub fn now_for_test(&self) -> u64 {
        Clock::now(self)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        u64::try_from(self.0.load(Ordering::SeqCst)).unwrap_or(0)
    }
}
