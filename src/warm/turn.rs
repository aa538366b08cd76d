//! A warm's turn at its target's host: the pool's politeness, held only while the browser
//! works on the host. A warm opens its context, applies its fingerprint and arms its
//! readiness watch first (nothing of that reaches the site), takes the turn just before its
//! first navigation, and gives it back as soon as the page is ready, before it captures and
//! closes. So one host sees one warm at a time (`max_concurrent_warms`), `warm_jitter` apart,
//! while the next warm's context is already open and waiting: a filling pool keeps its host
//! busy instead of idle while contexts open and close.

use rand::Rng;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Turns kept for [`Host::recent`].
const RECENT: usize = 64;

/// A host's warm slots (shared by the targets on it) and when they were last used.
#[derive(Debug)]
pub struct Host {
    slots: Arc<Semaphore>,
    log: Mutex<HostLog>,
}

#[derive(Debug, Default)]
struct HostLog {
    /// When a turn last ended (the host's last warm was done with it).
    last_left: Option<Instant>,
    recent: VecDeque<TurnSpan>,
}

/// One warm's time on the host, as [`Host::recent`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnSpan {
    /// When it started using the host (after its slot and jitter).
    pub entered: Instant,
    /// When it was done with it.
    pub left: Instant,
    /// How long the host sat unused between the end of its previous turn and this one
    /// (this turn's jitter included; with several slots, since the latest turn ended):
    /// `None` for its first.
    pub idle_before: Option<Duration>,
}

impl Host {
    /// A host that takes `slots` warms at once.
    pub fn new(slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots.max(1))),
            log: Mutex::default(),
        }
    }

    /// The slots themselves (a browser fetch for a session also takes one).
    pub fn slots(&self) -> &Arc<Semaphore> {
        &self.slots
    }

    /// The last turns (at most 64), oldest first.
    pub fn recent(&self) -> Vec<TurnSpan> {
        self.log().recent.iter().copied().collect()
    }

    fn log(&self) -> std::sync::MutexGuard<'_, HostLog> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One warm's turn at its host (see the module). Cloned into the warm's request; the permit
/// is given back by [`HostTurn::leave`], or when the last clone is dropped.
#[derive(Clone)]
pub struct HostTurn(Arc<TurnInner>);

struct TurnInner {
    host: Arc<Host>,
    /// `warm_jitter`: a random pause up to this before the host is used.
    jitter: Duration,
    shutdown: CancellationToken,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    permit: Option<OwnedSemaphorePermit>,
    entered: Option<Instant>,
    idle_before: Option<Duration>,
}

impl std::fmt::Debug for HostTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTurn")
            .field("jitter", &self.0.jitter)
            .field("held", &self.held().permit.is_some())
            .finish()
    }
}

/// The turn could not be had: the daemon is stopping.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("shutting down while waiting for the host")]
pub struct TurnRefused;

impl HostTurn {
    /// A turn at `host`, entered after a random pause up to `jitter`.
    pub fn new(host: Arc<Host>, jitter: Duration, shutdown: CancellationToken) -> Self {
        Self(Arc::new(TurnInner {
            host,
            jitter,
            shutdown,
            held: Mutex::default(),
        }))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.0
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a slot of the host, then until a random 0..=`jitter` has passed since the
    /// host's last turn ended; the host is this warm's until [`HostTurn::leave`]. Entering a
    /// turn already held does nothing.
    ///
    /// # Errors
    /// [`TurnRefused`] when the daemon stops meanwhile.
    pub async fn enter(&self) -> Result<(), TurnRefused> {
        if self.held().permit.is_some() {
            return Ok(());
        }
        let inner = &self.0;
        let permit = tokio::select! {
            p = inner.host.slots.clone().acquire_owned() => p.map_err(|_| TurnRefused)?,
            _ = inner.shutdown.cancelled() => return Err(TurnRefused),
        };
        // Consecutive visits are a random 0..=jitter apart: a host idle that long already
        // (its first warm, a full pool's occasional one) is not kept waiting.
        let most = inner.jitter.as_millis() as u64;
        let apart = Duration::from_millis(rand::thread_rng().gen_range(0..=most));
        let since = inner.host.log().last_left.map(|l| l.elapsed());
        let jitter = apart.saturating_sub(since.unwrap_or(Duration::MAX));
        tokio::select! {
            _ = tokio::time::sleep(jitter) => {}
            _ = inner.shutdown.cancelled() => return Err(TurnRefused),
        }
        let entered = Instant::now();
        let idle_before = inner
            .host
            .log()
            .last_left
            .map(|left| entered.saturating_duration_since(left));
        *self.held() = Held {
            permit: Some(permit),
            entered: Some(entered),
            idle_before,
        };
        Ok(())
    }

    /// Gives the host back (the page is ready; what is left is this warm's own). Leaving a
    /// turn not held does nothing.
    pub fn leave(&self) {
        let held = std::mem::take(&mut *self.held());
        let (Some(permit), Some(entered)) = (held.permit, held.entered) else {
            return;
        };
        let left = Instant::now();
        {
            let mut log = self.0.host.log();
            log.last_left = Some(left);
            if log.recent.len() == RECENT {
                log.recent.pop_front();
            }
            log.recent.push_back(TurnSpan {
                entered,
                left,
                idle_before: held.idle_before,
            });
        }
        drop(permit);
    }

    /// Whether the turn is held now.
    pub fn is_held(&self) -> bool {
        self.held().permit.is_some()
    }
}

impl Drop for TurnInner {
    fn drop(&mut self) {
        // A warm dropped half-way (timed out, its claim lost) gives the host back too; its
        // turn is not logged as one that used the host to the end.
        let held = self.held.get_mut().map(std::mem::take).unwrap_or_default();
        if held.permit.is_some() {
            let mut log = self.host.log();
            log.last_left = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn turns_at_one_host_never_overlap_and_the_next_waits_only_its_jitter() {
        let host = Arc::new(Host::new(1));
        let stop = CancellationToken::new();
        let jitter = Duration::from_millis(100);
        let a = HostTurn::new(host.clone(), jitter, stop.clone());
        let b = HostTurn::new(host.clone(), jitter, stop.clone());
        a.enter().await.unwrap();
        assert!(a.is_held());
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.enter().await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!b.is_held(), "one turn at a time");
        a.leave();
        a.leave();
        waiting.await.unwrap().unwrap();
        assert!(b.is_held());
        b.leave();
        let turns = host.recent();
        assert_eq!(turns.len(), 2);
        assert!(turns[0].left <= turns[1].entered, "{turns:?}");
        assert_eq!(turns[0].idle_before, None, "the host's first turn");
        let idle = turns[1].idle_before.expect("b followed a");
        assert!(idle <= jitter + Duration::from_millis(1), "{idle:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_idle_longer_than_the_jitter_is_entered_at_once() {
        let host = Arc::new(Host::new(1));
        let stop = CancellationToken::new();
        let jitter = Duration::from_secs(10);
        let turn = || HostTurn::new(host.clone(), jitter, stop.clone());
        let first = tokio::time::Instant::now();
        let a = turn();
        a.enter().await.unwrap();
        assert_eq!(
            first.elapsed(),
            Duration::ZERO,
            "a host's first warm does not wait"
        );
        a.leave();
        tokio::time::sleep(jitter).await;
        let later = tokio::time::Instant::now();
        turn().enter().await.unwrap();
        assert_eq!(
            later.elapsed(),
            Duration::ZERO,
            "idle for the whole jitter already"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_turn_gives_the_host_back_and_stopping_refuses_waiters() {
        let host = Arc::new(Host::new(1));
        let stop = CancellationToken::new();
        let a = HostTurn::new(host.clone(), Duration::ZERO, stop.clone());
        a.enter().await.unwrap();
        drop(a);
        let b = HostTurn::new(host.clone(), Duration::ZERO, stop.clone());
        b.enter().await.unwrap();
        let c = HostTurn::new(host.clone(), Duration::ZERO, stop.clone());
        let waiting = tokio::spawn(async move { c.enter().await });
        tokio::task::yield_now().await;
        stop.cancel();
        assert!(waiting.await.unwrap().is_err());
        assert!(host.recent().is_empty(), "no turn was left in full");
    }
}
