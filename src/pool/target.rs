//! One configured target at run time: its health policy, the warm slots of its host, its
//! proxies, its events and their back-offs, and the origins its sessions may load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backoff::{self, BackoffState, EventBackoffs, TargetBackoff};
use super::{lock, ProxyPicker};
use crate::browser::guard::UrlPolicy;
use crate::config::TargetConfig;
use crate::session::{now_ms, HealthPolicy};
use crate::warm::turn::Host;

/// One configured target and its runtime state.
pub struct TargetRuntime {
    /// The target's configuration.
    pub config: TargetConfig,
    /// When its sessions retire or back off (from `max_failures`, `max_uses`,
    /// `validate.require_cookies`).
    pub policy: HealthPolicy,
    /// Its host's warm slots and turns (shared by targets on the same host).
    pub host: Arc<Host>,
    /// The proxies its warms go through, with their cool-downs.
    pub(super) proxies: Mutex<ProxyPicker>,
    /// Warms of new sessions (not rotations) under way.
    pub(super) warming: AtomicUsize,
    /// Back-off after failed warms that blamed the site: no top-up warm meanwhile.
    pub(super) backoff: Mutex<TargetBackoff>,
    /// Back-off of events that failed (unknown, gone, not published): top-up picks others.
    /// Locked after `events` when both are held.
    pub(super) event_backoff: Mutex<EventBackoffs>,
    /// Event ids, refreshed from the store.
    pub(super) events: Mutex<Vec<String>>,
    /// The origins its sessions' browsers may load (see [`TargetRuntime::url_policy`]).
    pub(super) urls: Arc<UrlPolicy>,
    /// The store revision of this target's sessions the index was last resynced to
    /// ([`crate::store::Store::changes`]); `None` until the first resync lists them all.
    pub(super) synced_rev: Mutex<Option<u64>>,
}

/// `host:port` of a target's event pages (its name when it has none): targets on one host
/// share its warm slots.
fn host_of(t: &TargetConfig) -> String {
    t.event_url
        .as_deref()
        .and_then(|u| url::Url::parse(&u.replace("{event}", "x")).ok())
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| t.name.clone())
}

impl TargetRuntime {
    /// The runtime of every target; targets on one host share the smallest of their
    /// `max_concurrent_warms` as warm slots.
    pub(super) fn all(targets: &[TargetConfig]) -> Vec<Arc<TargetRuntime>> {
        let mut hosts: HashMap<String, Arc<Host>> = HashMap::new();
        for t in targets {
            let host = host_of(t);
            let permits = targets
                .iter()
                .filter(|o| host_of(o) == host)
                .map(|o| o.max_concurrent_warms)
                .min()
                .unwrap_or(1);
            hosts
                .entry(host)
                .or_insert_with(|| Arc::new(Host::new(permits)));
        }
        targets
            .iter()
            .map(|t| {
                Arc::new(TargetRuntime {
                    policy: TargetRuntime::policy_for(t),
                    host: hosts[&host_of(t)].clone(),
                    proxies: Mutex::new(ProxyPicker::new(&t.proxies)),
                    warming: AtomicUsize::new(0),
                    backoff: Mutex::default(),
                    event_backoff: Mutex::default(),
                    events: Mutex::new(t.events.clone()),
                    urls: Arc::new(TargetRuntime::url_policy(t)),
                    synced_rev: Mutex::new(None),
                    config: t.clone(),
                })
            })
            .collect()
    }

    /// The origins of a target's own URLs: `event_url`, login URL and `goto` steps, the check
    /// and validate URLs, and `allowed_origins`.
    pub fn url_policy(config: &TargetConfig) -> UrlPolicy {
        let mut urls: Vec<&str> = config.event_url.iter().map(String::as_str).collect();
        if let Some(l) = &config.login {
            urls.push(&l.url);
            urls.extend(l.steps.iter().filter_map(|s| match &s.action {
                crate::config::StepAction::Goto { url } => Some(url.as_str()),
                _ => None,
            }));
            urls.extend(l.check.url.as_deref());
        }
        urls.extend(config.validate.as_ref().map(|v| v.url.as_str()));
        urls.extend(config.allowed_origins.iter().map(String::as_str));
        UrlPolicy::from_urls(urls)
    }

    fn policy_for(config: &TargetConfig) -> HealthPolicy {
        HealthPolicy {
            max_failures: f64::from(config.max_failures),
            max_uses: config.max_uses,
            required_cookies: config
                .validate
                .as_ref()
                .map(|v| v.require_cookies.clone())
                .unwrap_or_default(),
            backoff: Duration::from_secs(60),
        }
    }

    /// Warms under way for new sessions.
    pub fn warming(&self) -> usize {
        self.warming.load(Ordering::Relaxed)
    }

    /// Whether the target has events to warm on (an `event_url` and at least one event).
    pub fn has_events(&self) -> bool {
        self.config.event_url.is_some() && !lock(&self.events).is_empty()
    }

    /// The target's back-off now: after failures of the site, or while every one of its
    /// events backs off. `None` when top-up may warm it.
    pub fn backoff(&self) -> Option<BackoffState> {
        let events = lock(&self.events);
        backoff::target_state(
            &lock(&self.backoff),
            &lock(&self.event_backoff),
            &events,
            now_ms(),
        )
    }

    /// Events of this target backing off now.
    pub fn events_backed_off(&self) -> usize {
        lock(&self.event_backoff).backed_off(now_ms())
    }

    /// Whether top-up would skip `event` now (it failed lately).
    pub fn event_backs_off(&self, event: &str) -> bool {
        lock(&self.event_backoff).blocks(event, now_ms())
    }
}
