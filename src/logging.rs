//! The log filter: an allow-list of the crates that may log below `warn`.
//!
//! Only this project's own code ([`ALLOWED`]: the library and the `warmer` binary) logs at
//! whatever level is asked for. Every other crate — the CDP and transport stack
//! (chromiumoxide, async-tungstenite, tungstenite, hyper, reqwest, h2, rustls), the HTTP edge
//! (axum, tower-http, which log rejections and URIs, and URIs may carry secret query strings)
//! and anything added later — is capped at `warn`, whatever the user asks, because at debug and
//! trace they print raw traffic: every CDP frame with its cookie values, typed passwords
//! (`Input.insertText`) and proxy passwords (`Fetch.continueWithAuth`), headers and URLs.
//! A user's directive for such a crate (`tungstenite=trace`) is kept but capped at `warn`;
//! `off`, `error` and `warn` are kept as they are. Span-only directives (`[warm]=trace`) match
//! events of every crate inside the span, so they are capped too.
//!
//! chromiumoxide's handler is silenced: its one message, an `ERROR` for a closed connection, is
//! printed every time a browser closes, on shutdown too, and the supervisor logs what it means
//! itself ("browser gone; relaunching" when it was not asked for). Its connection module is
//! held at `error`.
//!
//! Lines are plain text (ANSI colours only when the caller says stderr is a terminal) or, with
//! [`LogFormat::Json`], one JSON object per line (`timestamp`, `level`, `target`, `fields`,
//! and the spans) for log shippers.

use std::str::FromStr;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::filter::{FilterFn, LevelFilter};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer as _, SubscriberExt as _};
use tracing_subscriber::EnvFilter;

/// An error and its causes as one line (`opening store: reading x: Permission denied`), for
/// logs: `tracing::warn!(error = %chain(&e), "...")`. Our errors do not repeat their cause in
/// their own message, so `%e` alone would drop it; `{:#}` walks the chain of an
/// `anyhow::Error` only.
pub fn chain(e: &(dyn std::error::Error + '_)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

/// Tracing targets (crate names, as in module paths) that may log below `warn`: the library
/// and the `warmer` binary.
pub const ALLOWED: &[&str] = &["session_warmer", "warmer"];

/// The most verbose level any crate outside [`ALLOWED`] may log at.
pub const CAP: LevelFilter = LevelFilter::WARN;

/// chromiumoxide modules whose level is fixed here whatever the user asks (a user directive
/// for them, or below them, is dropped).
const FIXED: &[(&str, LevelFilter)] = &[
    ("chromiumoxide::handler", LevelFilter::OFF),
    ("chromiumoxide::conn", LevelFilter::ERROR),
];

/// How log lines are written (`--log-format`, `$WARMER_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (colours only at a terminal).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`),
    /// and the current span and span list when inside spans.
    Json,
}

/// The subscriber `warmer` logs through: the user's filter ([`filter`]), the allow-list's cap
/// ([`cap`]) and one line per event to `writer` in `format`; text has ANSI colours only when
/// `ansi` (JSON never has them).
pub fn subscriber<W>(
    requested: &str,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(writer)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter(requested))
        .with(cap())
        .with(lines)
}

/// The allow-list as a filter of its own, independent of the user's directives: an event or
/// span passes when it is at [`CAP`] or above, or its target is one of [`ALLOWED`] or a module
/// of one. (`EnvFilter` matches targets by string prefix, so `session_warmer=trace` alone
/// would also let a crate named `session_warmer_x` through.)
pub fn cap() -> FilterFn<fn(&Metadata<'_>) -> bool> {
    FilterFn::new(passes_cap as fn(&Metadata<'_>) -> bool)
}

fn passes_cap(meta: &Metadata<'_>) -> bool {
    CAP >= *meta.level() || allowed(meta.target())
}

/// Builds the filter from a user's directives (e.g. `debug`, `session_warmer=trace` or
/// `trace,tungstenite=trace`, in `RUST_LOG` syntax): see [`directives`]. Directives whose
/// level does not parse are left out ([`invalid_directives`] names them).
pub fn filter(requested: &str) -> EnvFilter {
    EnvFilter::new(plan(requested).0)
}

/// The directives of `requested` that [`filter`] leaves out because their level does not
/// parse (e.g. `hyper=loud`), for the caller to warn about once logging is set up.
pub fn invalid_directives(requested: &str) -> Vec<String> {
    plan(requested).1
}

/// The directives actually used for `requested`: the default level and every directive for
/// a crate outside [`ALLOWED`] capped at [`CAP`], the allowed crates at the requested default
/// level unless named, and chromiumoxide's handler off and connection at `error`.
pub fn directives(requested: &str) -> String {
    plan(requested).0
}

/// One directive of a user's filter, split.
struct Directive<'a> {
    /// Everything before `=level`: target and any `[span{field}]` part.
    head: &'a str,
    /// The target alone (empty for a span-only directive).
    target: &'a str,
    level: LevelFilter,
}

impl<'a> Directive<'a> {
    fn parse(d: &'a str) -> Result<Self, ()> {
        // Span field filters may contain '=' themselves: the level is after the last ']'.
        let tail_from = d.rfind(']').map_or(0, |i| i + 1);
        let (head, level) = match d[tail_from..].rfind('=') {
            Some(i) => {
                let (h, l) = d.split_at(tail_from + i);
                (h, LevelFilter::from_str(l[1..].trim()).map_err(|_| ())?)
            }
            // A bare target enables everything it logs.
            None => (d, LevelFilter::TRACE),
        };
        let target = head.split('[').next().unwrap_or("").trim();
        Ok(Self {
            head: head.trim(),
            target,
            level,
        })
    }
}

fn under(target: &str, krate: &str) -> bool {
    target == krate
        || target
            .strip_prefix(krate)
            .is_some_and(|rest| rest.starts_with("::"))
}

fn allowed(target: &str) -> bool {
    ALLOWED.iter().any(|c| under(target, c))
}

fn capped(level: LevelFilter) -> LevelFilter {
    level.min(CAP)
}

/// (directives, ignored directives).
fn plan(requested: &str) -> (String, Vec<String>) {
    let mut default: Option<LevelFilter> = None;
    let mut out: Vec<String> = Vec::new();
    let mut named: Vec<&str> = Vec::new();
    let mut ignored = Vec::new();
    for d in requested
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        if let Ok(level) = LevelFilter::from_str(d) {
            default = Some(level);
            continue;
        }
        let Ok(dir) = Directive::parse(d) else {
            ignored.push(d.to_string());
            continue;
        };
        if FIXED.iter().any(|(t, _)| under(dir.target, t)) {
            continue;
        }
        if allowed(dir.target) {
            if dir.head == dir.target {
                named.push(dir.target);
            }
            out.push(format!("{}={}", dir.head, dir.level));
        } else {
            out.push(format!("{}={}", dir.head, capped(dir.level)));
        }
    }
    let mut all = Vec::new();
    if let Some(level) = default {
        all.push(capped(level).to_string());
        for c in ALLOWED.iter().filter(|c| !named.contains(c)) {
            all.push(format!("{c}={level}"));
        }
    }
    all.extend(out);
    let floor = default.map_or(LevelFilter::OFF, capped);
    for (t, level) in FIXED {
        all.push(format!("{t}={}", (*level).min(floor)));
    }
    (all.join(","), ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    /// Emits one event per (target, level) pair under `requested` and returns which got
    /// through, as "target LEVEL".
    fn passes(requested: &str) -> Vec<String> {
        let out = Capture::default();
        let sub = subscriber(requested, LogFormat::Text, false, out.clone());
        tracing::subscriber::with_default(sub, || {
            macro_rules! all_levels {
                ($t:literal) => {
                    tracing::trace!(target: $t, "{} TRACE", $t);
                    tracing::debug!(target: $t, "{} DEBUG", $t);
                    tracing::info!(target: $t, "{} INFO", $t);
                    tracing::warn!(target: $t, "{} WARN", $t);
                    tracing::error!(target: $t, "{} ERROR", $t);
                };
            }
            all_levels!("session_warmer::pool");
            all_levels!("warmer");
            all_levels!("tungstenite::protocol");
            all_levels!("async_tungstenite");
            all_levels!("chromiumoxide::conn");
            all_levels!("chromiumoxide::handler");
            all_levels!("chromiumoxide::page");
            all_levels!("hyper::proto");
            all_levels!("reqwest::connect");
            all_levels!("tower_http::trace::on_request");
            all_levels!("axum::rejection");
            all_levels!("session_warmer_evil");
            tracing::info_span!("warm").in_scope(|| {
                all_levels!("h2::codec");
            });
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter_map(|l| {
                let i = l.rfind(": ")?;
                Some(l[i + 2..].to_string())
            })
            .collect()
    }

    fn has(p: &[String], s: &str) -> bool {
        p.iter().any(|l| l == s)
    }

    #[test]
    fn trace_lets_only_our_crates_below_warn() {
        let p = passes("trace");
        assert!(has(&p, "session_warmer::pool TRACE"), "{p:?}");
        assert!(has(&p, "warmer TRACE"), "{p:?}");
        for t in [
            "tungstenite::protocol",
            "async_tungstenite",
            "chromiumoxide::page",
            "hyper::proto",
            "reqwest::connect",
            "tower_http::trace::on_request",
            "axum::rejection",
            "session_warmer_evil",
            "h2::codec",
        ] {
            assert!(has(&p, &format!("{t} WARN")), "{t}: {p:?}");
            for l in ["INFO", "DEBUG", "TRACE"] {
                assert!(!has(&p, &format!("{t} {l}")), "{t} {l}: {p:?}");
            }
        }
        assert!(
            !p.iter().any(|l| l.starts_with("chromiumoxide::handler")),
            "{p:?}"
        );
        assert!(has(&p, "chromiumoxide::conn ERROR"), "{p:?}");
        assert!(!has(&p, "chromiumoxide::conn WARN"), "{p:?}");
    }

    #[test]
    fn per_crate_directives_outside_the_allow_list_are_capped_at_warn() {
        for asked in [
            "trace,tungstenite=trace,hyper=debug,chromiumoxide=trace,axum=trace",
            "tungstenite::protocol=trace,hyper,[warm]=trace,h2[warm]=trace",
            "chromiumoxide::handler=trace,chromiumoxide::conn=trace,TRACE",
            "[warm{x=1}]=trace,session_warmer_evil=trace,tower_http=trace",
        ] {
            let p = passes(asked);
            for t in [
                "tungstenite::protocol",
                "hyper::proto",
                "chromiumoxide::page",
                "axum::rejection",
                "h2::codec",
                "session_warmer_evil",
                "tower_http::trace::on_request",
            ] {
                for l in ["INFO", "DEBUG", "TRACE"] {
                    assert!(!has(&p, &format!("{t} {l}")), "{asked}: {t} {l}: {p:?}");
                }
            }
            assert!(
                !p.iter().any(|l| l.starts_with("chromiumoxide::handler")),
                "{asked}: {p:?}"
            );
            assert!(!has(&p, "chromiumoxide::conn WARN"), "{asked}: {p:?}");
        }
        // The cap keeps what the user asked at warn or below.
        let p = passes("tungstenite=warn");
        assert!(has(&p, "tungstenite::protocol WARN"), "{p:?}");
        assert!(!has(&p, "hyper::proto ERROR"), "only tungstenite: {p:?}");
        let p = passes("debug,tungstenite=error,hyper=off");
        assert!(!has(&p, "tungstenite::protocol WARN"), "{p:?}");
        assert!(has(&p, "tungstenite::protocol ERROR"), "{p:?}");
        assert!(!has(&p, "hyper::proto ERROR"), "{p:?}");
        assert!(has(&p, "reqwest::connect WARN"), "{p:?}");
    }

    #[test]
    fn our_crates_follow_what_is_asked() {
        let p = passes("warn,session_warmer=trace");
        assert!(has(&p, "session_warmer::pool TRACE"), "{p:?}");
        assert!(!has(&p, "warmer INFO"), "{p:?}");
        assert!(has(&p, "warmer WARN"), "{p:?}");
        let p = passes("trace,session_warmer=info");
        assert!(!has(&p, "session_warmer::pool DEBUG"), "{p:?}");
        assert!(has(&p, "session_warmer::pool INFO"), "{p:?}");
        assert!(has(&p, "warmer TRACE"), "{p:?}");
        let p = passes("debug,session_warmer::pool=error");
        assert!(!has(&p, "session_warmer::pool WARN"), "{p:?}");
        assert!(has(&p, "warmer DEBUG"), "{p:?}");
        let p = passes("info");
        assert!(has(&p, "session_warmer::pool INFO"), "{p:?}");
        assert!(!has(&p, "session_warmer::pool DEBUG"), "{p:?}");
        assert!(has(&p, "hyper::proto WARN"), "{p:?}");
        let p = passes("off");
        assert!(p.is_empty(), "{p:?}");
        let p = passes("error");
        assert!(has(&p, "chromiumoxide::conn ERROR"), "{p:?}");
        assert!(!has(&p, "chromiumoxide::page WARN"), "{p:?}");
    }

    #[test]
    fn directives_are_built_as_documented() {
        assert_eq!(
            directives("trace,tungstenite=trace"),
            "warn,session_warmer=trace,warmer=trace,tungstenite=warn,\
             chromiumoxide::handler=off,chromiumoxide::conn=error"
        );
        assert_eq!(
            directives("session_warmer=debug"),
            "session_warmer=debug,chromiumoxide::handler=off,chromiumoxide::conn=off"
        );
        assert_eq!(
            directives("a[s{f=1}]=debug"),
            "a[s{f=1}]=warn,chromiumoxide::handler=off,chromiumoxide::conn=off"
        );
        assert_eq!(invalid_directives("x=loud"), vec!["x=loud".to_string()]);
    }
}
