//! Proxy assignment: each new session takes the proxy least recently failed, spreading sessions
//! evenly; a proxy whose sessions keep failing is rested with exponential back-off.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct ProxyState {
    url: String,
    /// Sessions assigned and not yet retired.
    live: usize,
    last_failed: Option<Instant>,
    consecutive_failures: u32,
    rested_until: Option<Instant>,
}

/// Failures in a row after which a proxy is rested.
const REST_AFTER: u32 = 3;

/// The proxies of one target.
#[derive(Debug, Clone, Default)]
pub struct ProxyPicker {
    proxies: Vec<ProxyState>,
}

impl ProxyPicker {
    /// A picker over `urls` (none: every warm goes direct).
    pub fn new(urls: &[String]) -> Self {
        Self {
            proxies: urls
                .iter()
                .map(|u| ProxyState {
                    url: u.clone(),
                    live: 0,
                    last_failed: None,
                    consecutive_failures: 0,
                    rested_until: None,
                })
                .collect(),
        }
    }

    /// The proxy for a new session (None when the target has no proxies).
    pub fn pick(&mut self, now: Instant) -> Option<String> {
        let usable = |p: &&mut ProxyState| p.rested_until.is_none_or(|t| t <= now);
        let chosen = if self.proxies.iter_mut().any(|p| usable(&p)) {
            self.proxies
                .iter_mut()
                .filter(|p| usable(p))
                .min_by_key(|p| (p.live, p.last_failed))?
        } else {
            // All rested: the one whose rest ends first.
            self.proxies.iter_mut().min_by_key(|p| p.rested_until)?
        };
        chosen.live += 1;
        Some(chosen.url.clone())
    }

    /// Records that a session (re)uses `url`, e.g. after a restart.
    pub fn adopt(&mut self, url: &str) {
        if let Some(p) = self.proxies.iter_mut().find(|p| p.url == url) {
            p.live += 1;
        }
    }

    /// A session of `url` ended; `failed` when it was retired for failing.
    pub fn released(&mut self, url: &str, failed: bool, now: Instant) {
        let Some(p) = self.proxies.iter_mut().find(|p| p.url == url) else {
            return;
        };
        p.live = p.live.saturating_sub(1);
        if failed {
            p.consecutive_failures += 1;
            p.last_failed = Some(now);
            if p.consecutive_failures >= REST_AFTER {
                let exp = (p.consecutive_failures - REST_AFTER).min(6);
                let rest = Duration::from_secs(30) * 2u32.pow(exp);
                p.rested_until = Some(now + rest.min(Duration::from_secs(1800)));
            }
        } else {
            p.consecutive_failures = 0;
        }
    }

    /// A warm through `url` failed before a session existed.
    pub fn warm_failed(&mut self, url: &str, now: Instant) {
        self.released(url, true, now);
    }

    /// Proxies resting now.
    pub fn rested(&self, now: Instant) -> Vec<&str> {
        self.proxies
            .iter()
            .filter(|p| p.rested_until.is_some_and(|t| t > now))
            .map(|p| p.url.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picker() -> ProxyPicker {
        ProxyPicker::new(&[
            "http://a:1".into(),
            "http://b:1".into(),
            "http://c:1".into(),
        ])
    }

    #[test]
    fn spreads_evenly() {
        let mut p = picker();
        let now = Instant::now();
        let mut got: Vec<String> = (0..6).map(|_| p.pick(now).unwrap()).collect();
        got.sort();
        assert_eq!(
            got,
            [
                "http://a:1",
                "http://a:1",
                "http://b:1",
                "http://b:1",
                "http://c:1",
                "http://c:1"
            ]
        );
        assert_eq!(ProxyPicker::new(&[]).pick(now), None);
    }

    #[test]
    fn least_recently_failed_first_and_failing_proxies_rest() {
        let mut p = picker();
        let now = Instant::now();
        let a = p.pick(now).unwrap();
        p.released(&a, true, now);
        // a failed: b and c (never failed) come first.
        assert_ne!(p.pick(now).unwrap(), a);
        for _ in 0..3 {
            p.adopt(&a);
            p.released(&a, true, now);
        }
        assert_eq!(p.rested(now), vec![a.as_str()]);
        for _ in 0..10 {
            assert_ne!(p.pick(now).unwrap(), a, "a rests");
        }
        let later = now + Duration::from_secs(3600);
        assert!(p.rested(later).is_empty());
    }
}
