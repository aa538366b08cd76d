//! Process metrics in Prometheus' text format: labelled counters and one histogram, kept with
//! plain mutexes (the hot path only bumps a counter).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::session::RetireReason;

/// Upper bounds (seconds) of the warm-duration histogram.
const WARM_BUCKETS: [f64; 10] = [0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; WARM_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// A gauge sample: name, labels, value.
pub type Gauge<'a> = (&'a str, Vec<(&'a str, String)>, f64);

/// `# HELP` text of every metric, by name. A gauge pushed for rendering gets its text here
/// (add a line with it); one missing gets [`NO_HELP`], which the tests reject.
pub const HELP: &[(&str, &str)] = &[
    (
        "warmer_sessions",
        "Sessions in the pool by target and state.",
    ),
    (
        "warmer_accounts",
        "Login accounts by state (signed_in, failed, pending).",
    ),
    ("warmer_browser_up", "1 when a browser is up, else 0."),
    (
        "warmer_browser_launches",
        "Browser launches since the daemon started.",
    ),
    (
        "warmer_live_contexts",
        "Browser contexts alive, parked account contexts included.",
    ),
    (
        "warmer_open_contexts",
        "Browser contexts with a page open (the slots of browser.max_contexts).",
    ),
    (
        "warmer_browser_pss_bytes",
        "Proportional set size of the browser's whole process tree.",
    ),
    (
        "warmer_target_backoff_seconds",
        "Seconds until a target backing off after failed warms is tried again (0: none).",
    ),
    (
        "warmer_events_backed_off",
        "Events of a target whose warms are backing off after failures.",
    ),
    (
        "warmer_warms_total",
        "Warms finished, by target and outcome.",
    ),
    (
        "warmer_sessions_retired_total",
        "Sessions retired, by target and reason.",
    ),
    (
        "warmer_usage_reports_total",
        "Scraper usage reports, by target and outcome.",
    ),
    (
        "warmer_worker_events_total",
        "Background worker runs, by worker and outcome.",
    ),
    (
        "warmer_api_requests_total",
        "API requests answered, by route and status.",
    ),
    ("warmer_warm_duration_seconds", "Duration of warms."),
    (
        "warmer_cluster_daemons",
        "Daemons of the pool seen by their heartbeat within 15 s (this one included).",
    ),
    (
        "warmer_cluster_heartbeat_age_seconds",
        "Seconds since each daemon seen last beat its heartbeat, by node (the store's clock).",
    ),
    (
        "warmer_cluster_heartbeat_up",
        "1 when this daemon's last cluster heartbeat reached the store, else 0.",
    ),
    (
        "warmer_cluster_claims_held",
        "Claims of work (warm, refresh, validate, rotate, keep-alive) this daemon holds now.",
    ),
    (
        "warmer_cluster_claims_total",
        "Claims of work granted to this daemon.",
    ),
    (
        "warmer_cluster_takeovers_total",
        "Claims granted to this daemon of work whose earlier claim had lapsed (taken over).",
    ),
    (
        "warmer_cluster_lease_losses_total",
        "Claims of this daemon lost: its lease lapsed or was taken over before it finished.",
    ),
    (
        "warmer_cluster_requeued_total",
        "Lapsed claims (of any daemon) this daemon's reaps put back in their queue.",
    ),
    (
        "warmer_cluster_dead_lettered_total",
        "Lapsed claims this daemon's reaps dropped after too many lapses.",
    ),
];

/// The `# HELP` text of a metric missing from [`HELP`].
pub const NO_HELP: &str = "(no description)";

/// The `# HELP` text registered for `name` in [`HELP`], or [`NO_HELP`] so the exposition stays
/// valid when a new metric is added without a description.
fn help(name: &str) -> &'static str {
    HELP.iter()
        .find(|(n, _)| *n == name)
        .map_or(NO_HELP, |(_, h)| h)
}

/// `# HELP` and `# TYPE` lines of a metric.
fn head(out: &mut String, name: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", help(name));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A sample value as Prometheus writes it (`+Inf`, `-Inf`, `NaN`).
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

/// Renders `samples` `(name, labels, value)` as metrics of type `kind`: each name once with
/// `# HELP` and `# TYPE`, its samples together in the order given.
fn samples(out: &mut String, samples: &[Gauge<'_>], kind: &str) {
    let mut names: Vec<&str> = Vec::new();
    for (name, _, _) in samples {
        if !names.contains(name) {
            names.push(name);
        }
    }
    for name in names {
        head(out, name, kind);
        for (_, labels, v) in samples.iter().filter(|g| g.0 == name) {
            let l: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if l.is_empty() {
                let _ = writeln!(out, "{name} {}", value(*v));
            } else {
                let _ = writeln!(out, "{name}{{{}}} {}", l.join(","), value(*v));
            }
        }
    }
}

/// Counters the daemon keeps. Gauges (sessions by state) are computed when rendering.
#[derive(Default)]
pub struct Metrics {
    /// Finished warms by (target, outcome).
    warms: Mutex<BTreeMap<(String, String), u64>>,
    /// Duration of every finished warm, for the `_seconds` histogram.
    warm_seconds: Mutex<Histogram>,
    /// By route, then status: the hot path bumps it without allocating.
    api: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    /// Retirements by (target, reason).
    retired: Mutex<BTreeMap<(String, String), u64>>,
    /// Scraper usage reports by (target, outcome).
    reports: Mutex<BTreeMap<(String, String), u64>>,
    /// Background events (refresh, validate, ...) by (name, outcome).
    events: Mutex<BTreeMap<(String, String), u64>>,
}

/// Adds one to counter `k`. A poisoned lock is skipped: losing a count beats panicking in
/// the metrics path of a request.
fn bump<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    if let Ok(mut m) = m.lock() {
        *m.entry(k).or_default() += 1;
    }
}

/// Escapes a label value for the Prometheus text format (backslash, double quote, newline),
/// so targets or reasons with such characters cannot break the exposition.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// A warm finished: `outcome` is `ok` or the error kind.
    pub fn warm(&self, target: &str, outcome: &str, seconds: f64) {
        bump(&self.warms, (target.to_string(), outcome.to_string()));
        if let Ok(mut h) = self.warm_seconds.lock() {
            for (i, b) in WARM_BUCKETS.iter().enumerate() {
                if seconds <= *b {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
        }
    }

    /// An API request was answered.
    pub fn api(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.api.lock() {
            let by_status = match m.get_mut(route) {
                Some(v) => v,
                None => m.entry(route.to_string()).or_default(),
            };
            *by_status.entry(status).or_default() += 1;
        }
    }

    /// A session of `target` was retired; counted under the reason's label
    /// ([`RetireReason::label`]), never its prose.
    pub fn retired(&self, target: &str, reason: &RetireReason) {
        bump(
            &self.retired,
            (target.to_string(), reason.label().into_owned()),
        );
    }

    /// A scraper report arrived.
    pub fn report(&self, target: &str, outcome: &str) {
        bump(&self.reports, (target.to_string(), outcome.to_string()));
    }

    /// A named background event (validation, refresh, ...) with its outcome.
    pub fn event(&self, name: &str, outcome: &str) {
        bump(&self.events, (name.to_string(), outcome.to_string()));
    }

    /// Count of warms with this outcome for `target` (tests and status).
    pub fn warm_count(&self, target: &str, outcome: &str) -> u64 {
        self.warms
            .lock()
            .ok()
            .and_then(|m| m.get(&(target.to_string(), outcome.to_string())).copied())
            .unwrap_or(0)
    }

    /// Renders everything plus the given gauges `(name, labels, value)`: each metric once,
    /// with `# HELP` and `# TYPE`, its samples together (in the order given) even when the
    /// gauges of several names are interleaved.
    pub fn render(&self, gauges: &[Gauge<'_>]) -> String {
        self.render_with(gauges, &[])
    }

    /// [`Metrics::render`] plus counters computed elsewhere (`counters`, same shape as gauges,
    /// typed `counter`: names end in `_total`), such as the coordination's totals.
    pub fn render_with(&self, gauges: &[Gauge<'_>], counters: &[Gauge<'_>]) -> String {
        let mut out = String::new();
        samples(&mut out, gauges, "gauge");
        samples(&mut out, counters, "counter");
        let counter = |out: &mut String,
                       name: &str,
                       keys: (&str, &str),
                       m: &Mutex<BTreeMap<(String, String), u64>>| {
            head(out, name, "counter");
            if let Ok(m) = m.lock() {
                for ((a, b), v) in m.iter() {
                    let _ = writeln!(
                        out,
                        "{name}{{{}=\"{}\",{}=\"{}\"}} {v}",
                        keys.0,
                        escape(a),
                        keys.1,
                        escape(b)
                    );
                }
            }
        };
        counter(
            &mut out,
            "warmer_warms_total",
            ("target", "outcome"),
            &self.warms,
        );
        counter(
            &mut out,
            "warmer_sessions_retired_total",
            ("target", "reason"),
            &self.retired,
        );
        counter(
            &mut out,
            "warmer_usage_reports_total",
            ("target", "outcome"),
            &self.reports,
        );
        counter(
            &mut out,
            "warmer_worker_events_total",
            ("worker", "outcome"),
            &self.events,
        );
        head(&mut out, "warmer_api_requests_total", "counter");
        if let Ok(m) = self.api.lock() {
            for (route, by_status) in m.iter() {
                for (status, v) in by_status {
                    let _ = writeln!(
                        out,
                        "warmer_api_requests_total{{route=\"{}\",status=\"{status}\"}} {v}",
                        escape(route)
                    );
                }
            }
        }
        head(&mut out, "warmer_warm_duration_seconds", "histogram");
        if let Ok(h) = self.warm_seconds.lock() {
            for (i, b) in WARM_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "warmer_warm_duration_seconds_bucket{{le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "warmer_warm_duration_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "warmer_warm_duration_seconds_sum {}", h.sum);
            let _ = writeln!(out, "warmer_warm_duration_seconds_count {}", h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.warm("t", "ok", 0.7);
        m.warm("t", "navigation_timeout", 30.0);
        m.api("/api/sessions/event/{eventId}", 200);
        let text = m.render(&[(
            "warmer_sessions",
            vec![("target", "t".into()), ("state", "ready".into())],
            3.0,
        )]);
        assert!(text.contains("warmer_sessions{target=\"t\",state=\"ready\"} 3"));
        assert!(text.contains("warmer_warms_total{target=\"t\",outcome=\"ok\"} 1"));
        assert!(text.contains("warmer_warm_duration_seconds_bucket{le=\"1\"} 1"));
        assert!(text.contains("warmer_warm_duration_seconds_count 2"));
        assert!(text.contains("route=\"/api/sessions/event/{eventId}\",status=\"200\"} 1"));
    }

    #[test]
    fn every_metric_has_help_and_type_once() {
        let m = Metrics::default();
        let l = |t: &str| vec![("target", t.to_string())];
        // Interleaved names: each still gets one HELP/TYPE, samples grouped.
        let text = m.render(&[
            ("warmer_sessions", l("a"), 1.0),
            ("warmer_target_backoff_seconds", l("a"), 0.0),
            ("warmer_sessions", l("b"), 2.0),
            ("warmer_browser_up", vec![], 1.0),
        ]);
        for name in [
            "warmer_sessions",
            "warmer_target_backoff_seconds",
            "warmer_browser_up",
            "warmer_warms_total",
            "warmer_api_requests_total",
            "warmer_warm_duration_seconds",
        ] {
            assert_eq!(
                text.matches(&format!("# TYPE {name} ")).count(),
                1,
                "{text}"
            );
            assert_eq!(
                text.matches(&format!("# HELP {name} ")).count(),
                1,
                "{text}"
            );
        }
        assert!(!text.contains(NO_HELP), "{text}");
        assert!(text.contains("\nwarmer_browser_up 1\n"), "{text}");
        let a = text.find("warmer_sessions{target=\"a\"}").unwrap();
        let b = text.find("warmer_sessions{target=\"b\"}").unwrap();
        let backoff = text.find("warmer_target_backoff_seconds{").unwrap();
        assert!(a < b && b < backoff, "{text}");
        assert_eq!(value(f64::INFINITY), "+Inf");
    }
}
