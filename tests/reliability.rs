//! Reliability drills scaled to fit CI, with a real Chromium, real sled and real HTTP: Chromium
//! SIGKILLed 5 times under load, the real `warmer serve` SIGKILLed and restarted 3 times while
//! sessions are written, and a 100-cycle warm/dispose soak. The
//! drills are the ones `scripts/chaos`, `scripts/kill-restart` and `scripts/soak` run at full
//! size: this file includes `examples/reliability.rs` as a module.
//!
//! Each test gives its browsers a private `TMPDIR`, so its leftover checks see only its own
//! Chromium processes and dirs; a lock keeps them one at a time under plain `cargo test` too
//! (nextest runs this binary in the `chromium` test group, one test at a time).

#[path = "../examples/reliability.rs"]
#[allow(dead_code)]
mod reliability;

use std::path::Path;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `f` on a fresh runtime with `TMPDIR` pointing at a private dir (removed after, with
/// anything the drill left in it).
fn drill<T>(f: impl std::future::Future<Output = T>) -> T {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    reliability::init_logging(&std::env::var("RELIABILITY_LOG").unwrap_or_else(|_| "warn".into()));
    let dir = tempfile::Builder::new()
        .prefix("warmer-reliability-")
        .tempdir()
        .unwrap();
    let before = std::env::var_os("TMPDIR");
    // Each Chromium-launching test of this binary holds the lock, and nextest runs each test in
    // its own process: nothing else reads TMPDIR meanwhile.
    std::env::set_var("TMPDIR", dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(f);
    drop(rt);
    match before {
        Some(v) => std::env::set_var("TMPDIR", v),
        None => std::env::remove_var("TMPDIR"),
    }
    reap(dir.path());
    out
}

fn reap(dir: &Path) {
    let (killed, dirs) = reliability::reap_browsers(dir);
    if killed + dirs > 0 {
        eprintln!("removed {killed} leftover Chromium processes and {dirs} browser dirs");
    }
}

#[test]
fn chromium_killed_5_times_under_load_loses_nothing_and_serving_never_stops() {
    let report = drill(async {
        let mut opts = reliability::ChaosOpts::new(5);
        opts.fill_deadline = std::time::Duration::from_secs(60);
        opts.progress_deadline = std::time::Duration::from_secs(45);
        opts.refill_deadline = std::time::Duration::from_secs(30);
        reliability::chaos(&opts)
            .await
            .expect("the chaos drill runs")
    });
    eprintln!("{report:#?}");
    assert_eq!(report.kills.len(), 5, "kills");
    assert!(report.polls > 50, "the API was polled: {}", report.polls);
    assert_eq!(
        report.non_200, 0,
        "non-200 answers once the pool was filled: {:?} {:?}",
        report.non_200_by_status, report.first_errors
    );
    assert!(report.acked > 0, "sessions were served");
    assert!(report.lost.is_empty(), "lost sessions: {:?}", report.lost);
    assert!(
        report.retired_without_reason.is_empty(),
        "retired without a reason: {:?}",
        report.retired_without_reason
    );
    assert!(
        report.progress_after_s.is_some(),
        "warms, a cookie refresh and a validation succeed after the last kill"
    );
    assert_eq!(report.overran, 0, "no worker tick overran its timeout");
    if let Some(fetch) = report.revived_fetch {
        assert_eq!(
            fetch,
            (200, Some(200)),
            "a session stored before the last kill works in a context revived from its cookies"
        );
    }
    assert_eq!(
        report.extra_processes, 0,
        "no Chromium process beyond the current browser's"
    );
    assert_eq!(
        report.left_processes, 0,
        "no Chromium process after shutdown"
    );
    assert_eq!(
        (report.extra_dirs, report.left_dirs),
        (0, 0),
        "no browser dir beyond the current browser's, none after shutdown"
    );
    // Warms the crashes failed do not make the target back off (`WarmError::blames_target`):
    // two sessions retired after the chaos are replaced at once.
    assert!(
        report.refill_s.is_some(),
        "the pool refills within 30 s after two sessions are retired"
    );
}

#[test]
fn warmer_serve_sigkilled_3_times_keeps_every_acknowledged_session() {
    let report = drill(async {
        let opts = reliability::KillRestartOpts::new(3, env!("CARGO_BIN_EXE_warmer").into());
        reliability::kill_restart(&opts)
            .await
            .expect("the kill-restart drill runs")
    });
    eprintln!("{report:#?}");
    assert_eq!(report.rounds.len(), 3, "rounds");
    assert!(report.acked > 0, "sessions were acknowledged");
    assert_eq!(report.store_errors, 0, "the store opens after every kill");
    assert_eq!(
        report.restart_errors, 0,
        "the daemon restarts after every kill"
    );
    assert_eq!(
        report.missing_in_store, 0,
        "acknowledged sessions are in the store"
    );
    assert_eq!(
        report.missing_via_api, 0,
        "acknowledged sessions are served after the restart"
    );
    assert!(report.final_sigterm_ok, "the last daemon stops on SIGTERM");
    assert_eq!(report.overran, 0, "no worker tick overran its timeout");
    assert_eq!(
        (report.rounds_with_orphans, report.orphan_processes_total),
        (0, 0),
        "no Chromium process of a SIGKILLed daemon alive 5 s after the kill"
    );
    assert_eq!(
        report.dirs_unswept, 0,
        "the next start sweeps the browser dirs of a SIGKILLed daemon"
    );
    assert_eq!(
        report.cleanup_killed, 0,
        "nothing left for the drill to kill"
    );
    assert_eq!(
        (report.left_processes, report.left_dirs),
        (0, 0),
        "left after the cleanup"
    );
}

/// 100 warm/dispose cycles (about 35 s on 2 cores): Chromium's PSS and this process's RSS
/// sampled after 50, 75 and 100 cycles — past Chromium's own warm-up (+21 % PSS between cycles
/// 10 and 50) — may grow at most 25 %, and nothing is left behind. `scripts/soak` runs 2,000
/// cycles against a 10 % limit.
#[test]
fn a_100_cycle_soak_keeps_chromium_memory_flat() {
    let report = drill(async {
        let mut opts = reliability::SoakOpts::new(100, 25.0);
        // Past Chromium's warm-up: samples after 50, 75 and 100 cycles.
        opts.start_after = 50;
        reliability::soak(&opts).await.expect("the soak runs")
    });
    eprintln!("{report:#?}");
    let failures = report.failures();
    assert!(failures.is_empty(), "{failures:#?}");
}
