//! The in-memory pool: every known session with its serving state (leases, back-off, rotation
//! mark). Pure data and decisions, no I/O: the hot path (take, report) runs here under one
//! short lock.
//!
//! Servable sessions (ready, not an account's) are also kept ordered per target and per
//! (target, event) by (uses, last served), so a take looks at the best candidates first instead
//! of scanning every session: with 10,000 sessions it costs what it costs with 10. Every change
//! to an entry goes through [`Index::with_mut`], [`Index::update`], [`Index::insert`] or
//! [`Index::remove`], which keep that order in step.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::session::{Session, SessionState, UnixMillis};
use crate::store::Hold;

/// A served projection of a session, built once per session version and reused until it
/// goes stale (a cookie in it expires) or the session changes. Opaque to the pool: the API
/// decides what it holds.
#[derive(Debug, Clone)]
pub struct Projection {
    /// What is handed out (the API's serialized answer).
    pub body: Arc<str>,
    /// Rebuilt from then on (Unix ms); `u64::MAX` when nothing in it expires.
    pub valid_until: UnixMillis,
}

/// Views of a session that may be memoised, e.g. with and without proxy credentials.
pub const VIEWS: usize = 2;

/// Serving state of one session.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The record (changed only through [`Index::update`]).
    pub session: Arc<Session>,
    /// Exclusive to one scraper until then.
    pub lease_until: Option<Instant>,
    /// With a shared backend: this daemon's grant of that exclusivity in the coordination
    /// (`?lease=` held across daemons), released when the scraper reports.
    pub hold: Option<Hold>,
    /// Rate-limited (429): not served until then.
    pub backoff_until: Option<Instant>,
    /// With a shared backend: another daemon holds it exclusively (`?lease=`), as the last
    /// resync saw; not served here until then (the resync renews or lifts the mark).
    pub held_elsewhere_until: Option<Instant>,
    /// Its replacement is warming; still served until the replacement is ready.
    pub rotating: bool,
    /// Its health or uses changed in memory and are not on disk yet.
    pub dirty: bool,
    /// Monotonic counter of the last time it was handed out (spreads load).
    pub last_served: u64,
    /// Memoised projections by view; cleared whenever the session record changes.
    projections: [Option<Projection>; VIEWS],
}

impl Entry {
    fn new(session: Session) -> Self {
        Self {
            session: Arc::new(session),
            lease_until: None,
            hold: None,
            backoff_until: None,
            held_elsewhere_until: None,
            rotating: false,
            dirty: false,
            last_served: 0,
            projections: Default::default(),
        }
    }

    fn busy(&self, now: Instant) -> bool {
        [
            self.lease_until,
            self.backoff_until,
            self.held_elsewhere_until,
        ]
        .iter()
        .any(|t| t.is_some_and(|t| t > now))
    }

    /// Where the entry sits in the serving order, when it can be served at all.
    fn slot(&self) -> Option<Slot> {
        let s = &self.session;
        (s.state == SessionState::Ready && s.account.is_none()).then(|| Slot {
            target: s.target.clone(),
            event: s.event.clone(),
            rank: (s.health.uses, self.last_served, s.id.clone()),
        })
    }
}

/// Lower is served first: fewest uses, then least recently served; the id breaks ties.
type Rank = (u64, u64, String);

#[derive(Debug, PartialEq, Eq)]
struct Slot {
    target: String,
    event: Option<String>,
    rank: Rank,
}

/// The servable sessions of one target in serving order, overall and per event.
#[derive(Debug, Default)]
struct Servable {
    all: BTreeSet<Rank>,
    by_event: HashMap<String, BTreeSet<Rank>>,
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

/// What a take asks for.
#[derive(Debug, Clone, Default)]
pub struct Want<'a> {
    /// The target's name.
    pub target: &'a str,
    /// The event asked for; a session of it is preferred, any of the target serves.
    pub event: &'a str,
    /// Lease the session to this caller for that long.
    pub lease: Option<Duration>,
    /// Sessions used this often are not served any more.
    pub max_uses: Option<u64>,
    /// The view of the projection to hand out, and now in Unix ms (a stale one is rebuilt).
    pub view: (usize, UnixMillis),
}

/// What a take hands out: the view's projection, not the record (so the record's `Arc` is not
/// shared with a request in flight, and the next use count does not copy it).
pub type Taken = (Projection, Match);

/// Every session the daemon knows, by id.
#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<String, Entry>,
    servable: HashMap<String, Servable>,
    serial: u64,
}

impl Index {
    fn link(&mut self, slot: Option<Slot>) {
        let Some(slot) = slot else { return };
        let t = self.servable.entry(slot.target).or_default();
        if let Some(ev) = slot.event {
            t.by_event.entry(ev).or_default().insert(slot.rank.clone());
        }
        t.all.insert(slot.rank);
    }

    fn unlink(&mut self, slot: Option<Slot>) {
        let Some(slot) = slot else { return };
        let Some(t) = self.servable.get_mut(&slot.target) else {
            return;
        };
        if let Some(ev) = slot.event {
            if let Some(set) = t.by_event.get_mut(&ev) {
                set.remove(&slot.rank);
                if set.is_empty() {
                    t.by_event.remove(&ev);
                }
            }
        }
        t.all.remove(&slot.rank);
        if t.all.is_empty() {
            self.servable.remove(&slot.target);
        }
    }

    /// Adds or replaces a session (a replaced one loses its serving state).
    pub fn insert(&mut self, session: Session) {
        let id = session.id.clone();
        let entry = Entry::new(session);
        let slot = entry.slot();
        if let Some(old) = self.entries.insert(id, entry) {
            self.unlink(old.slot());
        }
        self.link(slot);
    }

    /// The entry of session `id`.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.get(id)
    }

    /// Changes an entry's serving state or record; its place in the serving order follows.
    /// A change of the record itself (through `Arc::make_mut`) must go through
    /// [`Index::update`] instead, so memoised projections are dropped.
    pub fn with_mut<R>(&mut self, id: &str, f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let e = self.entries.get_mut(id)?;
        let before = e.slot();
        let out = f(e);
        let after = e.slot();
        if before != after {
            self.unlink(before);
            self.link(after);
        }
        Some(out)
    }

    /// Takes session `id` out of the index.
    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.entries.remove(id)?;
        self.unlink(e.slot());
        Some(e)
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Replaces the session record of an entry, keeping its serving state.
    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Session)) -> Option<Arc<Session>> {
        self.with_mut(id, |e| {
            f(Arc::make_mut(&mut e.session));
            e.projections = Default::default();
            e.session.clone()
        })
    }

    /// Picks a session for `want.event` of `want.target`: one warmed on that event if any is
    /// free, else any free session of the target; the least used first; none that reached
    /// `want.max_uses`. Counts the use and, with a lease, makes it exclusive for that long.
    /// Returns the view's projection, built by `project` when none is memoised or it went
    /// stale.
    ///
    /// # Errors
    /// `NoneReady` when the target has no ready session, `AllBusy` when all are leased,
    /// backing off or used up.
    pub fn take(
        &mut self,
        want: &Want<'_>,
        now: Instant,
        project: impl FnOnce(&Session) -> Projection,
    ) -> Result<Taken, TakeError> {
        let (id, matched) = self.take_id(want, now)?;
        let p = self
            .projection(&id, want.view, project)
            .ok_or(TakeError::NoneReady)?;
        Ok((p, matched))
    }

    /// Session `id`'s memoised projection for `view` (`(view, now in Unix ms)`), built by
    /// `project` when none is memoised or it went stale; `None` when there is no such entry.
    pub fn projection(
        &mut self,
        id: &str,
        (view, now_ms): (usize, UnixMillis),
        project: impl FnOnce(&Session) -> Projection,
    ) -> Option<Projection> {
        // The projection is no part of the serving order: no re-ranking needed.
        let e = self.entries.get_mut(id)?;
        let slot = &mut e.projections[view.min(VIEWS - 1)];
        Some(match slot {
            Some(p) if p.valid_until > now_ms => p.clone(),
            _ => slot.insert(project(&e.session)).clone(),
        })
    }

    /// The choice and bookkeeping of [`Index::take`] (use counted, lease set) without a
    /// projection: the id of the session taken and how it matched.
    ///
    /// # Errors
    /// As [`Index::take`].
    pub fn take_id(&mut self, want: &Want<'_>, now: Instant) -> Result<(String, Match), TakeError> {
        let Some(t) = self.servable.get(want.target) else {
            return Err(TakeError::NoneReady);
        };
        let entries = &self.entries;
        let max_uses = want.max_uses.unwrap_or(u64::MAX);
        // In serving order: stop at the first free one, or once the rest are used up.
        let free = |set: &BTreeSet<Rank>| {
            set.iter()
                .take_while(|(uses, _, _)| *uses < max_uses)
                .find(|(_, _, id)| entries.get(id).is_some_and(|e| !e.busy(now)))
                .map(|(_, _, id)| id.clone())
        };
        let picked = match t.by_event.get(want.event).and_then(free) {
            Some(id) => Some((id, Match::Event)),
            None => free(&t.all).map(|id| (id, Match::Target)),
        };
        let Some((id, matched)) = picked else {
            return Err(TakeError::AllBusy);
        };
        self.serial += 1;
        let serial = self.serial;
        self.with_mut(&id, |e| {
            Arc::make_mut(&mut e.session).health.uses += 1;
            e.dirty = true;
            e.last_served = serial;
            e.lease_until = want.lease.map(|d| now + d);
        })
        .ok_or(TakeError::NoneReady)?;
        Ok((id, matched))
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

    fn want<'a>(target: &'a str, event: &'a str) -> Want<'a> {
        Want {
            target,
            event,
            ..Default::default()
        }
    }

    /// Takes a session; returns its id (the projection, never memoised here) and how it
    /// matched.
    fn take(ix: &mut Index, w: &Want<'_>, now: Instant) -> Result<(String, Match), TakeError> {
        let (p, m) = ix.take(w, now, |s| Projection {
            body: s.id.as_str().into(),
            valid_until: 0,
        })?;
        Ok((p.body.to_string(), m))
    }

    #[test]
    fn prefers_the_event_then_the_least_used() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        ix.insert(session("b", "t", "2"));
        ix.insert(session("c", "t", "2"));
        let now = Instant::now();
        let (id, m) = take(&mut ix, &want("t", "1"), now).unwrap();
        assert_eq!((id.as_str(), m), ("a", Match::Event));
        let (first, m) = take(&mut ix, &want("t", "2"), now).unwrap();
        assert_eq!(m, Match::Event);
        let (second, _) = take(&mut ix, &want("t", "2"), now).unwrap();
        assert_ne!(second, first, "spread over the event's sessions");
        ix.remove("a");
        let (_, m) = take(&mut ix, &want("t", "1"), now).unwrap();
        assert_eq!(m, Match::Target, "reuses another event's session");
        assert_eq!(
            take(&mut ix, &want("other", "1"), now),
            Err(TakeError::NoneReady)
        );
    }

    #[test]
    fn a_lease_makes_a_session_exclusive_until_it_ends() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        let leased = Want {
            lease: Some(Duration::from_secs(30)),
            ..want("t", "1")
        };
        take(&mut ix, &leased, now).unwrap();
        assert_eq!(
            take(&mut ix, &want("t", "1"), now).unwrap_err(),
            TakeError::AllBusy
        );
        let later = now + Duration::from_secs(31);
        assert!(take(&mut ix, &want("t", "1"), later).is_ok());
        take(&mut ix, &leased, later).unwrap();
        ix.release("a");
        assert!(take(&mut ix, &want("t", "1"), later).is_ok());
    }

    #[test]
    fn retired_and_backing_off_sessions_are_not_served() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        ix.with_mut("a", |e| {
            e.backoff_until = Some(now + Duration::from_secs(5))
        });
        assert_eq!(
            take(&mut ix, &want("t", "1"), now).unwrap_err(),
            TakeError::AllBusy
        );
        ix.update("a", |s| s.state = SessionState::Retired);
        assert_eq!(
            take(&mut ix, &want("t", "1"), now).unwrap_err(),
            TakeError::NoneReady
        );
        ix.update("a", |s| s.state = SessionState::Ready);
        let later = now + Duration::from_secs(6);
        assert_eq!(take(&mut ix, &want("t", "1"), later).unwrap().0, "a");
    }

    #[test]
    fn uses_are_counted_and_marked_dirty() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        take(&mut ix, &want("t", "1"), now).unwrap();
        take(&mut ix, &want("t", "1"), now).unwrap();
        let dirty = ix.take_dirty();
        assert_eq!(dirty.len(), 1);
        assert_eq!(dirty[0].health.uses, 2);
        assert!(ix.take_dirty().is_empty());
    }

    #[test]
    fn a_used_up_session_is_not_served_again() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        ix.insert(session("b", "t", "2"));
        let now = Instant::now();
        let once = Want {
            max_uses: Some(1),
            ..want("t", "1")
        };
        assert_eq!(take(&mut ix, &once, now).unwrap().0, "a");
        assert_eq!(
            take(&mut ix, &once, now).unwrap(),
            ("b".into(), Match::Target)
        );
        assert_eq!(take(&mut ix, &once, now), Err(TakeError::AllBusy));
    }

    /// The order kept beside the entries is the one a full scan would find, through every kind
    /// of change, over many sessions.
    #[test]
    fn serving_order_matches_a_full_scan_through_changes() {
        let mut ix = Index::default();
        for i in 0..300 {
            ix.insert(session(
                &format!("s{i}"),
                ["t", "u"][i % 2],
                &format!("{}", i % 7),
            ));
        }
        let now = Instant::now();
        let scan = |ix: &Index, target: &str, event: &str| {
            ix.iter()
                .filter(|e| {
                    e.session.target == target
                        && e.session.state == SessionState::Ready
                        && !e.busy(now)
                })
                .min_by_key(|e| {
                    let s = &e.session;
                    (
                        s.event.as_deref() != Some(event),
                        s.health.uses,
                        e.last_served,
                        s.id.clone(),
                    )
                })
                .map(|e| e.session.id.clone())
        };
        for round in 0..2000u64 {
            let target = ["t", "u"][(round % 2) as usize];
            let event = format!("{}", (round * 13) % 9);
            match round % 5 {
                0 => {
                    let id = format!("s{}", (round * 7) % 300);
                    ix.update(&id, |s| {
                        s.state = if s.state == SessionState::Ready {
                            SessionState::Retired
                        } else {
                            SessionState::Ready
                        };
                        s.health.uses += round % 3;
                    });
                }
                1 => {
                    let id = format!("s{}", (round * 11) % 300);
                    ix.with_mut(&id, |e| {
                        e.lease_until = Some(now + Duration::from_secs(60));
                    });
                }
                2 => {
                    let id = format!("s{}", (round * 17) % 300);
                    ix.remove(&id);
                    ix.insert(session(&id, target, &event));
                }
                _ => {}
            }
            let expected = scan(&ix, target, &event);
            let got = take(&mut ix, &want(target, &event), now).ok().map(|t| t.0);
            assert_eq!(got, expected, "round {round}");
        }
    }

    #[test]
    fn a_projection_is_built_once_and_again_after_a_change_or_when_stale() {
        let mut ix = Index::default();
        ix.insert(session("a", "t", "1"));
        let now = Instant::now();
        let built = std::cell::Cell::new(0);
        let project_at = |ix: &mut Index, view: usize, now_ms: UnixMillis| {
            let w = Want {
                view: (view, now_ms),
                ..want("t", "1")
            };
            let (p, _) = ix
                .take(&w, now, |s| {
                    built.set(built.get() + 1);
                    Projection {
                        body: format!("{}:{}:{view}", s.id, s.cookies.len()).into(),
                        valid_until: 1_000,
                    }
                })
                .unwrap();
            p.body.to_string()
        };
        let first = project_at(&mut ix, 0, 10);
        assert_eq!(project_at(&mut ix, 0, 20), first);
        assert_eq!(built.get(), 1, "memoised");
        project_at(&mut ix, 1, 20);
        assert_eq!(built.get(), 2, "one per view");
        project_at(&mut ix, 0, 1_000);
        assert_eq!(built.get(), 3, "rebuilt once stale");
        ix.update("a", |s| s.cookies.clear());
        assert_eq!(project_at(&mut ix, 0, 30), "a:0:0");
        assert_eq!(built.get(), 4, "rebuilt after a change");
    }
}
