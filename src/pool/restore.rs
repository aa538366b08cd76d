//! Start-up: the pool's sessions loaded from the store (ready ones served at once, expired
//! ones retired) and the configured events seeded into it.

use super::{chain, lock, Pool, PoolError, TargetRuntime};
use crate::session::{now_ms, SessionState, Verdict};
use crate::store::Event;
use crate::warm::Warm;

impl<W: Warm> Pool<W> {
    /// Loads sessions from the store: ready ones are served at once (no browser needed);
    /// expired ones are retired. Seeds configured events into the store.
    ///
    /// # Errors
    /// When the store cannot be read.
    pub async fn restore(&self) -> Result<(usize, usize), PoolError> {
        let sessions = self.store.list_sessions().await?;
        let now = now_ms();
        let mut ready = 0;
        let mut expired = Vec::new();
        {
            let mut ix = self.index();
            for mut s in sessions {
                let Ok(t) = self.target(&s.target) else {
                    continue;
                };
                if s.state == SessionState::Ready {
                    if let Verdict::Retire(reason) = t.policy.check(&s, now) {
                        s.state = SessionState::Retired;
                        s.health.retired_reason = Some(reason.to_string());
                        expired.push(s.clone());
                    } else {
                        ready += 1;
                        if let Some(p) = &s.proxy {
                            lock(&t.proxies).adopt(p);
                        }
                    }
                }
                ix.insert(s);
            }
        }
        let n_expired = expired.len();
        if !expired.is_empty() {
            for s in &expired {
                self.store.put_session(s).await?;
            }
        }
        for t in &self.targets {
            self.seed_events(t).await?;
        }
        Ok((ready, n_expired))
    }

    async fn seed_events(&self, t: &TargetRuntime) -> Result<(), PoolError> {
        let mut ids = t.config.events.clone();
        if let Some(f) = &t.config.events_file {
            match std::fs::read_to_string(f) {
                Ok(text) => ids.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                ),
                Err(e) => {
                    tracing::warn!(target = %t.config.name, file = %f.display(), error = %chain(&e), "reading events_file")
                }
            }
        }
        let name = t.config.name.clone();
        let events: Vec<Event> = ids
            .iter()
            .map(|id| Event {
                target: name.clone(),
                id: id.clone(),
                url: None,
                added_at: now_ms(),
            })
            .collect();
        self.store.put_events(&events).await?;
        let all = self.store.list_events(Some(&name)).await?;
        *lock(&t.events) = all.into_iter().map(|e| e.id).collect();
        Ok(())
    }
}
