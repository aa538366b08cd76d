//! [`Timed`]: a [`Warm`] that records when each warm starts and ends. Shared by tests/ready.rs
//! and examples/bench_warm.rs (each includes this file with `#[path]`).

use session_warmer::session::Session;
use session_warmer::warm::{Revisit, Revisited, Warm, WarmError, WarmRequest, Warmer};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A [`Warm`] that records when each of the pool's warms starts and ends (after the host's
/// slot and jitter: while the browser works on it for the host).
pub struct Timed {
    /// The warmer doing the work.
    pub inner: Warmer,
    /// `(start, end)` of every warm, in the order they ended.
    pub spans: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

impl Warm for Timed {
    async fn warm(&self, req: &WarmRequest) -> Result<Session, WarmError> {
        let start = Instant::now();
        let r = Warm::warm(&self.inner, req).await;
        self.spans.lock().unwrap().push((start, Instant::now()));
        r
    }

    async fn revisit(&self, s: &Session, r: &Revisit<'_>) -> Result<Revisited, WarmError> {
        Warm::revisit(&self.inner, s, r).await
    }

    fn navigation_timeout(&self) -> Duration {
        Warm::navigation_timeout(&self.inner)
    }
}
