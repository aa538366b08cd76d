//! Back-off after failed warms, per target and per event. Whom a failure blames decides what
//! backs off ([`Culprit::of`]): an unknown or unpublished event backs off alone (top-up keeps
//! warming the target's other events), the target backs off only on failures of the site, and a
//! browser failure only pauses briefly. Pure state and decisions with the clock passed in; the
//! pool holds one [`TargetBackoff`] and one [`EventBackoffs`] per target.

use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::HashMap;
use std::time::Duration;

use crate::session::UnixMillis;
use crate::warm::Blame;

/// Pause before warming again after a warm the browser failed (not the target).
pub const BROWSER_RETRY: Duration = Duration::from_secs(1);

/// First back-off of an event that failed; doubles on each repeat.
pub const EVENT_BACKOFF_MIN: Duration = Duration::from_secs(30);

/// Longest back-off of an event (before jitter).
pub const EVENT_BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Events whose failures are remembered per target; beyond it, expired entries are forgotten
/// first (callers can name any event id, so the map must not grow without bound).
pub const MAX_TRACKED_EVENTS: usize = 10_000;

/// What a failed warm backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    /// Only the event: top-up skips it for a while and keeps warming the target's others.
    Event,
    /// The whole target: top-up warms none of its sessions for a while.
    Target,
    /// Nobody: the browser failed; top-up retries shortly ([`BROWSER_RETRY`]).
    Browser,
}

impl Culprit {
    /// What backs off after a failure blaming `blame`. `picked`: the pool chose the event at
    /// random from its store (top-up), rather than a caller or a rotation naming it.
    pub fn of(blame: Blame, picked: bool) -> Self {
        match blame {
            Blame::Event => Culprit::Event,
            // The store should hold published events: one it picked not being ready says the
            // site is not serving events; one a caller named is just early.
            Blame::EventNotReady if picked => Culprit::Target,
            Blame::EventNotReady => Culprit::Event,
            Blame::Target => Culprit::Target,
            Blame::Browser => Culprit::Browser,
        }
    }
}

/// Why something backs off: a short label (a metrics label) and the failure, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// `WarmError::kind` of the last failure, or `all_events_backed_off`.
    pub kind: &'static str,
    /// The last failure's message.
    pub message: String,
}

/// A target's back-off now, as the API, the dashboard and `/metrics` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffState {
    /// Left before top-up warms the target again.
    pub remaining: Duration,
    /// Why it backs off.
    pub reason: Reason,
    /// Failed warms in a row that blamed the target (0 when only its events back off).
    pub failures: u32,
}

/// A target's back-off after failed warms that blamed it.
#[derive(Debug, Default)]
pub struct TargetBackoff {
    /// Consecutive failed warms that blamed the target; drives the delay.
    streak: u32,
    /// No top-up warm before this.
    until: UnixMillis,
    /// Why, while it lasts.
    reason: Option<Reason>,
}

impl TargetBackoff {
    /// Records a failure that blamed the target; returns the back-off it starts.
    pub fn failed(&mut self, reason: Reason, now: UnixMillis) -> Duration {
        self.streak = self.streak.saturating_add(1);
        let d = backoff_delay(self.streak);
        self.until = now + d.as_millis() as u64;
        self.reason = Some(reason);
        d
    }

    /// Records a failure of the browser: top-up waits [`BROWSER_RETRY`] (a longer back-off
    /// already running is kept). Returns the pause.
    pub fn browser_failed(&mut self, reason: Reason, now: UnixMillis) -> Duration {
        let until = now + BROWSER_RETRY.as_millis() as u64;
        if until > self.until {
            self.until = until;
            self.reason = Some(reason);
        }
        BROWSER_RETRY
    }

    /// A warm of the target succeeded: the back-off ends.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// Whether top-up must not warm the target now.
    pub fn blocks(&self, now: UnixMillis) -> bool {
        now < self.until
    }

    /// The back-off running now, if any.
    pub fn state(&self, now: UnixMillis) -> Option<BackoffState> {
        let reason = self.reason.clone().filter(|_| self.blocks(now))?;
        Some(BackoffState {
            remaining: Duration::from_millis(self.until - now),
            reason,
            failures: self.streak,
        })
    }
}

/// One event's failures.
#[derive(Debug, Clone)]
struct EventState {
    /// Consecutive failed warms of the event; drives its delay.
    streak: u32,
    /// Not picked by top-up before this.
    until: UnixMillis,
}

/// The back-off of a target's events that failed (unknown, gone, not published).
#[derive(Debug, Default)]
pub struct EventBackoffs {
    /// By event id; kept after the back-off ends so a repeat backs off longer, until a warm
    /// of the event succeeds.
    events: HashMap<String, EventState>,
}

impl EventBackoffs {
    /// Records a failure that blamed `event`; returns the back-off it starts.
    pub fn failed(&mut self, event: &str, now: UnixMillis) -> Duration {
        if self.events.len() >= MAX_TRACKED_EVENTS && !self.events.contains_key(event) {
            self.forget_some(now);
        }
        let e = self.events.entry(event.to_string()).or_insert(EventState {
            streak: 0,
            until: 0,
        });
        e.streak = e.streak.saturating_add(1);
        let d = event_backoff_delay(e.streak);
        e.until = now + d.as_millis() as u64;
        d
    }

    /// Makes room: forgets events whose back-off is over, else the one ending first.
    fn forget_some(&mut self, now: UnixMillis) {
        self.events.retain(|_, e| e.until > now);
        if self.events.len() >= MAX_TRACKED_EVENTS {
            if let Some(k) = self
                .events
                .iter()
                .min_by_key(|(_, e)| e.until)
                .map(|(k, _)| k.clone())
            {
                self.events.remove(&k);
            }
        }
    }

    /// A warm of `event` succeeded: its failures are forgotten.
    pub fn succeeded(&mut self, event: &str) {
        self.events.remove(event);
    }

    /// Whether top-up must not pick `event` now.
    pub fn blocks(&self, event: &str, now: UnixMillis) -> bool {
        self.events.get(event).is_some_and(|e| now < e.until)
    }

    /// Events backing off now (whether or not they are in the target's store).
    pub fn backed_off(&self, now: UnixMillis) -> usize {
        self.events.values().filter(|e| now < e.until).count()
    }

    /// A random event of `events` that is not backing off.
    pub fn pick<'a>(&self, events: &'a [String], now: UnixMillis) -> Option<&'a String> {
        let free: Vec<&String> = events.iter().filter(|e| !self.blocks(e, now)).collect();
        free.choose(&mut rand::thread_rng()).copied()
    }

    /// When every one of `events` backs off (and there is at least one): how long until the
    /// first is free again.
    pub fn all_blocked_for(&self, events: &[String], now: UnixMillis) -> Option<Duration> {
        let mut first_free: Option<UnixMillis> = None;
        for ev in events {
            let e = self.events.get(ev).filter(|e| now < e.until)?;
            first_free = Some(first_free.map_or(e.until, |f| f.min(e.until)));
        }
        first_free.map(|f| Duration::from_millis(f - now))
    }
}

/// A target's back-off: the one its failures started, else — when every one of its events
/// backs off — the wait for the first of them.
pub fn target_state(
    target: &TargetBackoff,
    events: &EventBackoffs,
    ids: &[String],
    now: UnixMillis,
) -> Option<BackoffState> {
    if let Some(s) = target.state(now) {
        return Some(s);
    }
    let remaining = events.all_blocked_for(ids, now)?;
    Some(BackoffState {
        remaining,
        reason: Reason {
            kind: "all_events_backed_off",
            message: format!(
                "every one of its {} events failed lately (unknown or not published)",
                ids.len()
            ),
        },
        failures: 0,
    })
}

/// Exponential back-off with jitter: 1 s, 2 s, 4 s ... at most 5 min.
pub fn backoff_delay(streak: u32) -> Duration {
    grow(streak, Duration::from_secs(1), Duration::from_secs(300))
}

/// An event's back-off: 30 s, 1 min, 2 min ... at most 30 min, with jitter.
pub fn event_backoff_delay(streak: u32) -> Duration {
    grow(streak, EVENT_BACKOFF_MIN, EVENT_BACKOFF_MAX)
}

/// `min` doubled per repeat after the first, capped at `max`, plus up to 25 % jitter.
fn grow(streak: u32, min: Duration, max: Duration) -> Duration {
    let base = (min * 2u32.pow(streak.saturating_sub(1).min(16))).min(max);
    let jitter = rand::thread_rng().gen_range(0..=base.as_millis() as u64 / 4);
    base + Duration::from_millis(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(kind: &'static str) -> Reason {
        Reason {
            kind,
            message: format!("{kind} happened"),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff_delay(1) >= Duration::from_secs(1));
        assert!(backoff_delay(1) <= Duration::from_millis(1250));
        assert!(backoff_delay(4) >= Duration::from_secs(8));
        assert!(backoff_delay(30) <= Duration::from_secs(375));
        assert!(event_backoff_delay(1) >= EVENT_BACKOFF_MIN);
        assert!(event_backoff_delay(2) >= EVENT_BACKOFF_MIN * 2);
        assert!(event_backoff_delay(u32::MAX) <= EVENT_BACKOFF_MAX * 5 / 4);
    }

    #[test]
    fn an_unknown_event_backs_off_the_event_and_only_site_failures_the_target() {
        // A caller's unknown event, and one the pool picked: the event's fault either way.
        assert_eq!(Culprit::of(Blame::Event, false), Culprit::Event);
        assert_eq!(Culprit::of(Blame::Event, true), Culprit::Event);
        // Not published yet: the event when named, the site when the pool picked it.
        assert_eq!(Culprit::of(Blame::EventNotReady, false), Culprit::Event);
        assert_eq!(Culprit::of(Blame::EventNotReady, true), Culprit::Target);
        assert_eq!(Culprit::of(Blame::Target, false), Culprit::Target);
        assert_eq!(Culprit::of(Blame::Target, true), Culprit::Target);
        assert_eq!(Culprit::of(Blame::Browser, true), Culprit::Browser);
    }

    #[test]
    fn a_failing_event_is_skipped_longer_on_each_repeat_until_it_succeeds() {
        let events: Vec<String> = ["good", "gone"].map(String::from).to_vec();
        let mut b = EventBackoffs::default();
        let now = 1_000_000;
        let first = b.failed("gone", now);
        assert!(b.blocks("gone", now + 1) && !b.blocks("good", now + 1));
        for _ in 0..50 {
            assert_eq!(b.pick(&events, now + 1).unwrap(), "good");
        }
        assert_eq!(b.backed_off(now + 1), 1);
        assert_eq!(b.all_blocked_for(&events, now + 1), None);
        // Over: picked again; a repeat backs off longer.
        let later = now + first.as_millis() as u64;
        assert!(!b.blocks("gone", later));
        assert_eq!(b.backed_off(later), 0);
        let second = b.failed("gone", later);
        assert!(second >= EVENT_BACKOFF_MIN * 2, "{second:?}");
        // Success forgets it.
        b.succeeded("gone");
        assert!(!b.blocks("gone", later + 1));
        assert!(b.failed("gone", later) < EVENT_BACKOFF_MIN * 2);
    }

    #[test]
    fn a_target_whose_events_all_back_off_shows_as_backing_off() {
        let events: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let t = TargetBackoff::default();
        let mut b = EventBackoffs::default();
        let now = 1_000_000;
        b.failed("a", now);
        assert_eq!(target_state(&t, &b, &events, now), None);
        let d = b.failed("b", now + 10);
        let s = target_state(&t, &b, &events, now + 10).expect("all events back off");
        assert_eq!(s.reason.kind, "all_events_backed_off");
        assert!(s.remaining <= d && s.remaining >= EVENT_BACKOFF_MIN - Duration::from_millis(10));
        assert_eq!(b.pick(&events, now + 10), None);
        // No events at all is not a back-off.
        assert_eq!(b.all_blocked_for(&[], now), None);
    }

    #[test]
    fn site_failures_back_the_target_off_with_their_reason_and_a_success_ends_it() {
        let mut t = TargetBackoff::default();
        let now = 1_000_000;
        assert!(!t.blocks(now) && t.state(now).is_none());
        let d1 = t.failed(reason("target_http"), now);
        let d2 = t.failed(reason("network"), now);
        assert!(d2 > d1);
        let s = t.state(now + 1).expect("backing off");
        assert_eq!(s.reason.kind, "network");
        assert_eq!(s.failures, 2);
        assert_eq!(s.remaining, d2 - Duration::from_millis(1));
        // A browser failure does not shorten it.
        t.browser_failed(reason("browser_gone"), now);
        assert_eq!(t.state(now + 1).unwrap().reason.kind, "network");
        assert!(!t.blocks(now + d2.as_millis() as u64));
        t.succeeded();
        assert!(t.state(now + 1).is_none());
        // A browser failure alone pauses briefly, without counting against the target.
        assert_eq!(t.browser_failed(reason("browser_gone"), now), BROWSER_RETRY);
        assert_eq!(t.state(now).unwrap().failures, 0);
    }

    #[test]
    fn callers_naming_unknown_events_cannot_grow_the_map_without_bound() {
        let mut b = EventBackoffs::default();
        let now = 1_000_000;
        for i in 0..MAX_TRACKED_EVENTS + 50 {
            b.failed(&format!("e{i}"), now + i as u64);
        }
        assert!(b.events.len() <= MAX_TRACKED_EVENTS);
        assert!(b.blocks(&format!("e{}", MAX_TRACKED_EVENTS + 49), now + 1));
    }
}
