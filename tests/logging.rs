//! Logs a machine can read: the real `warmer serve`, its stderr a file (not a terminal),
//! writes no ANSI escape codes; with `--log-format json` (or `$WARMER_LOG_FORMAT=json`) every
//! line of stderr is one JSON object with `level`, `target` and `fields`.

mod common;

use common::eventually;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `warmer serve` (with `args`, `envs`) against the demo site until it serves a session,
/// stops it with SIGTERM and returns its stderr.
fn serve_log(args: &[&str], envs: &[(&str, &str)]) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let site = rt
        .block_on(session_warmer::demo::DemoSite::start(
            Default::default(),
            0,
            stop.clone(),
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("warmer.toml"),
        format!(
            "[server]\nlisten = '127.0.0.1:{port}'\n[store]\npath = 'store'\n\
             [[targets]]\nname = 'demo'\nevent_url = '{}'\nevents = ['1001']\nwarmup = '100ms'\n\
             pool_size = 1\n",
            site.event_url_template()
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warmer"));
    cmd.current_dir(dir.path())
        .args(["serve", "--config", "warmer.toml"])
        .args(args)
        // Whatever the environment running the tests says, colours are up to the binary.
        .env_remove("NO_COLOR")
        .env_remove("WARMER_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("WARMER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let api = format!("http://127.0.0.1:{port}");
    rt.block_on(eventually(
        "a served session",
        Duration::from_secs(60),
        || async {
            let r = reqwest::get(format!("{api}/api/sessions/event/1001"))
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    ));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the daemon did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.cancel();
    std::fs::read_to_string(&log).unwrap()
}

/// Every line parsed as a JSON object with a level, a target and fields; panics naming the
/// first line that is not.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}"));
            assert!(
                matches!(
                    v["level"].as_str(),
                    Some("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR")
                ),
                "level: {l}"
            );
            assert!(v["target"].is_string(), "target: {l}");
            assert!(v["fields"].is_object(), "fields: {l}");
            v
        })
        .collect()
}

#[test]
fn a_log_that_is_not_a_terminal_has_no_ansi_codes() {
    let text = serve_log(&["--log", "debug"], &[]);
    assert!(text.contains(" INFO "), "the run logged: {text}");
    assert!(text.contains("DEBUG"), "the run logged at debug: {text}");
    let escapes = text.matches("\x1b[").count();
    assert_eq!(
        escapes,
        0,
        "{escapes} ANSI escape(s) in {} bytes of log",
        text.len()
    );
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let text = serve_log(&["--log", "debug", "--log-format", "json"], &[]);
    assert!(!text.contains("\x1b["), "no ANSI codes in JSON");
    let lines = json_lines(&text);
    assert!(lines.len() >= 3, "the run logged: {text}");
    assert!(
        lines.iter().any(
            |v| v["target"].as_str().unwrap().starts_with("session_warmer")
                && v["level"] == "DEBUG"
        ),
        "the daemon's own debug events: {text}"
    );
    assert!(
        lines.iter().all(|v| v["fields"]["message"].is_string()),
        "each event has its message: {text}"
    );
    assert!(
        lines
            .iter()
            .any(|v| v["fields"].as_object().unwrap().len() > 1),
        "structured fields are kept as fields: {text}"
    );
    assert!(
        lines.iter().all(|v| v["timestamp"].is_string()),
        "timestamps: {text}"
    );
}

#[test]
fn log_format_from_the_environment_covers_the_final_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
        .current_dir(dir.path())
        .args(["sessions", "list", "--config", "missing.toml"])
        .args(["--log", "debug,hyper=loud"])
        .env("WARMER_LOG_FORMAT", "json")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stderr).unwrap();
    let lines = json_lines(&text);
    assert!(
        lines.iter().any(|v| v["level"] == "ERROR"
            && v["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("missing.toml")),
        "the error that ended the run is a JSON line: {text}"
    );
    assert!(
        lines.iter().any(|v| v["level"] == "WARN"
            && v["fields"]["message"]
                .as_str()
                .unwrap()
                .contains("hyper=loud")),
        "the invalid directive is warned about in JSON: {text}"
    );
    // An unknown format is refused by name.
    let out = Command::new(env!("CARGO_BIN_EXE_warmer"))
        .args(["check", "--log-format", "xml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}
