//! The supervisor's task. Launched: launch, watch for death (handler stream ended), relaunch
//! with back-off, recycle make-before-break when the memory guard says so, drain replaced
//! browsers, and on shutdown close, reap and clean up every one. Remote: one loop per endpoint
//! that connects, asks `Browser.getVersion` every `heartbeat_every` (a clean close of the
//! websocket is otherwise silent), counts the browser lost when that fails or the connection
//! drops, and reconnects with exponential back-off and jitter; on shutdown it disposes its
//! contexts there and disconnects, leaving the browser running.

use std::time::{Duration, Instant};

use super::launch::Running;
use super::{cdp, process, remote, BrowserInfo, Supervisor};
use crate::config::Endpoint;

/// Relaunch back-off: the first delay, and the most it grows to while browsers die before they
/// served anything (or fail to launch).
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The cap of that back-off: a browser that keeps dying is retried at least this often
/// (plus jitter), so the daemon recovers soon once the cause is fixed.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

impl Supervisor {
    /// Makes `running` a live browser: launched, it replaces the current one (which drains);
    /// remote, it joins the other endpoints that are up.
    async fn install(&self, running: Running, started: Instant) {
        let info = BrowserInfo {
            generation: running.generation,
            version: running.version.clone(),
            pid: running.pid,
            profile_dir: running.dir().map(|d| d.to_path_buf()).unwrap_or_default(),
            endpoint: running.endpoint().map(str::to_string),
        };
        tracing::info!(
            generation = running.generation,
            pid = ?running.pid,
            endpoint = running.endpoint().unwrap_or("launched"),
            version = %running.version.full,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "browser up"
        );
        self.inner.running.write().await.push(running);
        if info.endpoint.is_some() {
            self.inner.live.send_modify(|live| live.push(info));
        } else {
            self.inner.live.send_replace(vec![info]);
        }
    }

    /// Takes browser `generation` out of the running set so its teardown is done once, by
    /// whoever removed it; `None` if another path (drain, death, shutdown) got it first.
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

    /// The supervisor's task: with remote browsers, [`Supervisor::run_remote`]; else sweeps
    /// dead daemons' launches, then launches, watches and relaunches (with back-off) or
    /// recycles (above the memory limit) until shutdown, then tears every browser down.
    pub(super) async fn run(self) {
        if self.inner.config.is_remote() {
            return self.run_remote().await;
        }
        // Profiles and processes left in the temp dir by daemons that died without cleaning up;
        // live daemons' launches are recognised and left alone.
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
        // Counts launches, recycles included: contexts record the generation they were made in,
        // so drain and `served` can tell browsers apart.
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
                        self.inner.live.send_replace(Vec::new());
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
        self.inner.live.send_replace(Vec::new());
        let all: Vec<Running> = self.inner.running.write().await.drain(..).collect();
        for r in all {
            self.teardown(r, true).await;
        }
        tracing::debug!("browser supervisor stopped");
    }

    /// Remote browsers: one [`Supervisor::attach_loop`] per endpoint until shutdown, then
    /// each connected one loses this daemon's contexts and the connection (nothing else: the
    /// browsers keep running, no process is signalled, nothing is swept).
    async fn run_remote(self) {
        let endpoints = self.inner.config.remote_endpoints();
        let loops = endpoints.into_iter().map(|e| self.clone().attach_loop(e));
        futures::future::join_all(loops).await;
        self.inner.live.send_replace(Vec::new());
        let all: Vec<Running> = self.inner.running.write().await.drain(..).collect();
        futures::future::join_all(all.into_iter().map(|r| self.teardown(r, true))).await;
        tracing::debug!("browser supervisor stopped (remote browsers left running)");
    }

    /// Keeps the remote browser at `endpoint` connected until shutdown: connect (reading its version
    /// for the fingerprints), heartbeat, and on loss drop it from the live set (its contexts
    /// fail at once; the pool re-creates live sessions from stored cookies in the others or
    /// after the reconnect) and reconnect with exponential back-off and jitter. On shutdown
    /// the connection is left in place for [`Supervisor::run_remote`] to tear down.
    async fn attach_loop(self, endpoint: Endpoint) {
        let cfg = self.inner.config.clone();
        let mut backoff = BACKOFF_MIN;
        let mut lost_at: Option<Instant> = None;
        loop {
            if self.inner.shutdown.is_cancelled() {
                return;
            }
            let generation = self
                .inner
                .generations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1;
            let started = Instant::now();
            let attached = tokio::select! {
                r = remote::attach(&cfg, &endpoint, generation) => r,
                _ = self.inner.shutdown.cancelled() => return,
            };
            let running = match attached {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint, error = %crate::logging::chain(&e), retry_in_ms = backoff.as_millis() as u64, "remote browser not reachable");
                    self.sleep_backoff(&mut backoff).await;
                    continue;
                }
            };
            self.inner
                .launches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(at) = lost_at.take() {
                tracing::info!(endpoint = %endpoint, generation, down_ms = at.elapsed().as_millis() as u64, "reconnected to the remote browser");
            }
            let gone = running.gone.clone();
            self.install(running, started).await;
            // Waits for the connection to drop, a heartbeat to fail, or shutdown (which leaves the
            // connection for `run_remote`'s teardown).
            let why = loop {
                tokio::select! {
                    _ = gone.cancelled() => break "connection closed".to_string(),
                    _ = self.inner.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(cfg.heartbeat_every) => {
                        if let Err(e) = self.heartbeat(generation, cfg.heartbeat_timeout).await {
                            break format!("heartbeat failed: {}", crate::logging::chain(&e));
                        }
                    }
                };
            };
            lost_at = Some(Instant::now());
            // Its contexts fail now rather than at their next call.
            gone.cancel();
            self.inner
                .live
                .send_modify(|live| live.retain(|b| b.generation != generation));
            let served = self.inner.served.load(std::sync::atomic::Ordering::Relaxed) >= generation;
            if served || started.elapsed() > Duration::from_secs(30) {
                backoff = BACKOFF_MIN;
            }
            tracing::warn!(endpoint = %endpoint, generation, reason = %why, retry_in_ms = backoff.as_millis() as u64, "remote browser lost; reconnecting");
            if let Some(r) = self.remove(generation).await {
                self.teardown(r, false).await;
            }
            self.sleep_backoff(&mut backoff).await;
        }
    }

    /// One heartbeat: `Browser.getVersion` of browser `generation` within `timeout`.
    async fn heartbeat(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<(), super::BrowserError> {
        let guard = self.inner.running.read().await;
        let Some(r) = guard.iter().find(|r| r.generation == generation) else {
            return Err(super::BrowserError::Gone("no longer connected".into()));
        };
        cdp(
            "Browser.getVersion (heartbeat)",
            timeout,
            &r.gone,
            r.browser.version(),
        )
        .await
        .map(drop)
    }

    /// Sleeps `backoff` plus up to half of it again at random (so daemons that lost the same
    /// browser do not come back in step), then doubles it up to `BACKOFF_MAX`. Shutdown
    /// cuts the sleep short.
    async fn sleep_backoff(&self, backoff: &mut Duration) {
        let half = (backoff.as_millis() as u64 / 2).max(100);
        let jitter = Duration::from_millis(rand::random::<u64>() % half);
        tokio::select! {
            _ = tokio::time::sleep(*backoff + jitter) => {}
            _ = self.inner.shutdown.cancelled() => {}
        }
        *backoff = (*backoff * 2).min(BACKOFF_MAX);
    }
}
