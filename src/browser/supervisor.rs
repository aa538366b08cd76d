//! The supervisor's task: launch, watch for death (handler stream ended), relaunch with
//! back-off, recycle make-before-break when the memory guard says so, drain replaced browsers,
//! and on shutdown close, reap and clean up every one.

use std::time::{Duration, Instant};

use super::launch::Running;
use super::{process, BrowserInfo, Supervisor};

/// Relaunch back-off: the first delay, and the most it grows to while browsers die before they
/// served anything (or fail to launch).
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

impl Supervisor {
    async fn install(&self, running: Running, started: Instant) {
        let info = BrowserInfo {
            generation: running.generation,
            version: running.version.clone(),
            pid: running.pid,
            profile_dir: running.dirs.path().to_path_buf(),
        };
        tracing::info!(
            generation = running.generation,
            pid = ?running.pid,
            version = %running.version.full,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "browser up"
        );
        self.inner.running.write().await.push(running);
        self.inner.live.send_replace(Some(info));
    }

    async fn remove(&self, generation: u64) -> Option<Running> {
        let mut all = self.inner.running.write().await;
        let i = all.iter().position(|r| r.generation == generation)?;
        Some(all.remove(i))
    }

    /// Closes a replaced browser once its contexts are gone (at most 30 s).
    fn drain(&self, generation: u64) {
        let me = self.clone();
        self.inner.tracker.spawn(async move {
            let end = Instant::now() + Duration::from_secs(30);
            while me.contexts_of(generation) > 0 && Instant::now() < end {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = me.inner.shutdown.cancelled() => return,
                }
            }
            if let Some(r) = me.remove(generation).await {
                tracing::info!(generation, "replaced browser drained; closing it");
                me.teardown(r, true).await;
            }
        });
    }

    /// The supervisor's task: sweeps dead daemons' launches, then launches, watches and
    /// relaunches (with back-off) or recycles (above the memory limit) until shutdown, then
    /// tears every browser down.
    pub(super) async fn run(self) {
        let swept = process::sweep(&std::env::temp_dir()).await;
        if swept.launches + swept.failed > 0 {
            tracing::info!(
                launches = swept.launches,
                processes = swept.processes,
                failed = swept.failed,
                live_left_alone = swept.live,
                unknown_left_alone = swept.unknown,
                "swept browser launches of daemons that died"
            );
        } else {
            tracing::debug!(?swept, "no browser launches of dead daemons to sweep");
        }
        let mut backoff = BACKOFF_MIN;
        let mut generation = 0u64;
        let check_every = self.inner.config.memory_check_every;
        // A limit below a fresh browser's size must not recycle in a loop.
        let mut last_recycle: Option<Instant> = None;
        'outer: loop {
            if self.inner.shutdown.is_cancelled() {
                break;
            }
            generation += 1;
            let started = Instant::now();
            let running = match self.launch(generation).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %crate::logging::chain(&e), retry_in_ms = backoff.as_millis() as u64, "browser launch failed");
                    self.sleep_backoff(&mut backoff).await;
                    continue;
                }
            };
            let mut current = generation;
            let mut current_started = started;
            let mut gone = running.gone.clone();
            self.install(running, started).await;
            loop {
                let recycle = tokio::select! {
                    _ = gone.cancelled() => {
                        self.inner.live.send_replace(None);
                        // A browser that served a context (or lived 30 s) was healthy: its
                        // death starts the back-off over. One that died before serving
                        // anything doubles it, up to BACKOFF_MAX.
                        let served = self.inner.served.load(std::sync::atomic::Ordering::Relaxed) >= current;
                        if served || current_started.elapsed() > Duration::from_secs(30) {
                            backoff = BACKOFF_MIN;
                        }
                        tracing::warn!(generation = current, served, retry_in_ms = backoff.as_millis() as u64, "browser gone; relaunching");
                        if let Some(r) = self.remove(current).await {
                            self.teardown(r, false).await;
                        }
                        self.sleep_backoff(&mut backoff).await;
                        continue 'outer;
                    }
                    _ = self.inner.shutdown.cancelled() => break 'outer,
                    _ = tokio::time::sleep(check_every) => self.above_memory_limit(last_recycle),
                };
                if !recycle {
                    continue;
                }
                generation += 1;
                let started = Instant::now();
                match self.launch(generation).await {
                    Ok(fresh) => {
                        let old = current;
                        current = generation;
                        current_started = started;
                        gone = fresh.gone.clone();
                        self.install(fresh, started).await;
                        tracing::info!(old, new = current, "browser recycled (make-before-break)");
                        last_recycle = Some(Instant::now());
                        self.drain(old);
                    }
                    Err(e) => {
                        tracing::error!(error = %crate::logging::chain(&e), "launching a replacement browser failed; keeping the current one")
                    }
                }
            }
        }
        self.inner.live.send_replace(None);
        let all: Vec<Running> = self.inner.running.write().await.drain(..).collect();
        for r in all {
            self.teardown(r, true).await;
        }
        tracing::debug!("browser supervisor stopped");
    }

    async fn sleep_backoff(&self, backoff: &mut Duration) {
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        tokio::select! {
            _ = tokio::time::sleep(*backoff + jitter) => {}
            _ = self.inner.shutdown.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    }
}
