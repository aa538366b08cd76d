//! The in-memory pool: every known session with its serving state (leases, back-off, rotation
//! mark). Pure data and decisions, no I/O: the hot path (take, report) runs here under one
//! short lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::session::{Session, SessionState};

/// Serving state of one session.
#[derive(Debug, Clone)]
pub struct Entry {
    pub session: Arc<Session>,
    /// Exclusive to one scraper until then.
    pub lease_until: Option<Instant>,
    /// Rate-limited (429): not served until then.
    pub backoff_until: Option<Instant>,
    /// Its replacement is warming; still served until the replacement is ready.
    pub rotating: bool,
    /// Its health or uses changed in memory and are not on disk yet.
    pub dirty: bool,
    /// Monotonic counter of the last time it was handed out (spreads load).
    pub last_served: u64,
}

/// How the served session matched the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Match {
    /// Warmed on the requested event.
    Event,
    /// Another event's session of the same target, reused.
    Target,
}

/// Why nothing could be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakeError {
    /// The target has no ready session (yet).
    NoneReady,
    /// Every ready session is leased or backing off.
    AllBusy,
}

/// Every session the daemon knows, by id.
#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<String, Entry>,
    serial: u64,
}

impl Index {
    /// Adds or replaces a session.
    pub fn insert(&mut self, session: Session) {
        let id = session.id.clone();
        let entry = Entry {
            session: Arc::new(session),
            lease_until: None,
            backoff_until: None,
            rotating: false,
            dirty: false,
            last_served: 0,
        };
        self.entries.insert(id, entry);
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.entries.get_mut(id)
    }

    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        self.entries.remove(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Replaces the session record of an entry, keeping its serving state.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Session)) -> Option<Arc<Session>> {
        let e = self.entries.get_mut(id)?;
        f(Arc::make_mut(&mut e.session));
        Some(e.session.clone())
    }

    /// Ready sessions of `target` (rotating ones included).
    pub fn ready(&self, target: &str) -> impl Iterator<Item = &Entry> {
        let target = target.to_string();
        self.entries
            .values()
            .filter(move |e| e.session.target == target && e.session.state == SessionState::Ready)
    }

    /// Picks a session for `event` of `target`: one warmed on that event if any is free, else
    /// any free session of the target; the least used first. Counts the use and, with `lease`,
    /// makes it exclusive for that long.
    ///
    /// # Errors
    /// `NoneReady` when the target has no ready session, `AllBusy` when all are leased or
    /// backing off.
    pub fn take(
        &mut self,
        target: &str,
        event: &str,
        lease: Option<Duration>,
        now: Instant,
    ) -> Result<(Arc<Session>, Match), TakeError> {
        let mut any = false;
        let mut best: Option<(&String, (bool, u64, u64))> = None;
        for (id, e) in &self.entries {
            let s = &e.session;
            if s.target != target || s.state != SessionState::Ready || s.account.is_some() {
                continue;
            }
            any = true;
            if e.lease_until.is_some_and(|t| t > now) || e.backoff_until.is_some_and(|t| t > now) {
                continue;
            }
            // Lower is better: event match first, then fewest uses, then least recently served.
            let key = (
                s.event.as_deref() != Some(event),
                s.health.uses,
                e.last_served,
            );
            if best.as_ref().is_none_or(|(_, k)| key < *k) {
                best = Some((id, key));
            }
        }
        let Some((id, (other_event, _, _))) = best else {
            return Err(if any {
                TakeError::AllBusy
            } else {
                TakeError::NoneReady
            });
        };
        let id = id.clone();
        self.serial += 1;
        let serial = self.serial;
        let e = self.entries.get_mut(&id).expect("picked entry exists");
        Arc::make_mut(&mut e.session).health.uses += 1;
        e.dirty = true;
        e.last_served = serial;
        e.lease_until = lease.map(|d| now + d);
        let matched = if other_event {
            Match::Target
        } else {
            Match::Event
        };
        Ok((e.session.clone(), matched))
    }

    /// Ends a lease early.
    pub fn release(&mut self, id: &str) {
        if let Some(e) = self.entries.get_mut(id) {
            e.lease_until = None;
        }
    }

    /// Sessions whose health or uses must still be written.
    pub fn take_dirty(&mut self) -> Vec<Arc<Session>> {
        self.entries
            .values_mut()
            .filter(|e| e.dirty)
            .map(|e| {
                e.dirty = false;
                e.session.clone()
            })
            .collect()
    }

    /// Counts per (target, state) with rotating sessions counted apart.
    pub fn counts(&self) -> HashMap<(String, &'static str), usize> {
        let mut m = HashMap::new();
        for e in self.entries.values() {
            let state = match (e.session.state, e.rotating) {
                (SessionState::Ready, true) => "rotating",
                (SessionState::Ready, false) => "ready",
                (SessionState::Warming, _) => "warming",
                (SessionState::Retired, _) => "retired",
            };
            *m.entry((e.session.target.clone(), state)).or_default() += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, target: &str, event: &str) -> Session {
        let mut s: Session =
            serde_json::from_str(include_str!("../../tests/fixtures/session_v1.json")).unwrap();
        s.id = id.into();
        s.target = target.into();
        s.event = Some(event.into());
        s.state = SessionState::Ready;
        s.account = None;
        s.health = Default::default();
        s
    }

    #[test]
    fn prefers_the_event_then_the_least_used() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        ix.insert(session("b", "t", "2"));
        ix.insert(session("c", "t", "2"));
        let now = Instant::now();
        let (s, m) = ix.take("t", "1", None, now).unwrap();
        assert_eq!((s.id.as_str(), m), ("a", Match::Event));
        let (s, m) = ix.take("t", "2", None, now).unwrap();
        assert_eq!(m, Match::Event);
        let first = s.id.clone();
        let (s, _) = ix.take("t", "2", None, now).unwrap();
        assert_ne!(s.id, first, "spread over the event's sessions");
        ix.remove("a");
        let (_, m) = ix.take("t", "1", None, now).unwrap();
        assert_eq!(m, Match::Target, "reuses another event's session");
        assert_eq!(ix.take("other", "1", None, now), Err(TakeError::NoneReady));
    }

    #[test]
    fn a_lease_makes_a_session_exclusive_until_it_ends() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        ix.take("t", "1", Some(Duration::from_secs(30)), now)
            .unwrap();
        assert_eq!(
            ix.take("t", "1", None, now).unwrap_err(),
            TakeError::AllBusy
        );
        let later = now + Duration::from_secs(31);
        assert!(ix.take("t", "1", None, later).is_ok());
        ix.take("t", "1", Some(Duration::from_secs(30)), later)
            .unwrap();
        ix.release("a");
        assert!(ix.take("t", "1", None, later).is_ok());
    }

    #[test]
    fn retired_and_backing_off_sessions_are_not_served() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        ix.get_mut("a").unwrap().backoff_until = Some(now + Duration::from_secs(5));
        assert_eq!(
            ix.take("t", "1", None, now).unwrap_err(),
            TakeError::AllBusy
        );
        ix.update("a", |s| s.state = SessionState::Retired);
        assert_eq!(
            ix.take("t", "1", None, now).unwrap_err(),
            TakeError::NoneReady
        );
    }

    #[test]
    fn uses_are_counted_and_marked_dirty() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        ix.take("t", "1", None, now).unwrap();
        ix.take("t", "1", None, now).unwrap();
        let dirty = ix.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].health.uses, 2);
        assert!(ix.take_dirty().is_empty());
    }
}
