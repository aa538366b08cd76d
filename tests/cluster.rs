//! Several daemons on one Redis are one pool (issue 12), with real parts only: real `warmer
//! serve` processes (the built binary, at least 3), one real `redis-server` per cluster, ONE
//! remote Chromium shared by all of them (started by the test with `--remote-debugging-port`;
//! each daemon attaches through `browser.endpoint`), and the demo site on 127.0.0.1
//! (fixtures in tests/common/cluster.rs).
//!
//! - `pool_size` is per target for all daemons together: 3 daemons, pool_size 3 → exactly 3
//!   sessions stored, and still 3 after seconds of polls (no overshoot).
//! - A daemon joining a full pool serves at once (its first take answers 200) and warms
//!   nothing (stored sessions unchanged, its `warmer_warms_total` 0, no claim of its own).
//! - Any daemon serves any session, and 3 daemons × 1,000 concurrent usage reports on one
//!   session count 3,000 (the shared counters, the record read through every daemon and
//!   through `warmer sessions show`).
//! - `?lease=` is exclusive across daemons: a session held through one is never handed out
//!   with a lease by another (another session, or 503 when all are held).
//! - A session deleted, and one retired (a 403 report), through one daemon is served by none
//!   within 1 s.
//! - SIGKILL of the daemon holding a warm's claim: the warm is taken over by another daemon
//!   once the claim lapses (`cluster.lease_ttl` 3 s), the pool reaches pool_size again, no
//!   stored session is lost, and the killed daemon leaves no Chromium (it attached remotely)
//!   and no temp files; the shared Chromium keeps running.
//! - Periodic work is claimed by name: cookie refresh, validation and rotation asked of every
//!   daemon at once are each done once per session (one refresh audited per session, the
//!   passes summing to the pool, three replacements for three rotated sessions, not nine).
//! - A daemon stalled (SIGSTOP) mid-warm past its lease: another daemon takes the warm over and
//!   commits; the stalled one, resumed, writes nothing (fencing) and serves the taker's session.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/redis.rs"]
mod redis_server;

use cluster::{client, Cluster, Options};
use common::eventually;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// An event of the demo site.
const EVENT: &str = "1001";

/// 3 daemons, pool_size 3: exactly 3 stored, for seconds of polls; then a fourth daemon joins
/// the full pool, serves at once and warms nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_size_counts_for_all_daemons_and_a_joiner_warms_nothing() {
    let mut c = Cluster::start(3, Options::default()).await;
    let first = c.wait_served(3, Duration::from_secs(45)).await;

    // No overshoot: 3 stored, for a while (a dozen top-up ticks of every daemon). Checked
    // after the joiner's case, so that one failing does not hide the other.
    let mut overshoot = (first.len() != 3).then(|| format!("{first:?}"));
    let hold = Instant::now() + Duration::from_secs(4);
    while Instant::now() < hold {
        let stored = c.states().await;
        if stored.len() != 3 && overshoot.is_none() {
            overshoot = Some(c.describe().await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The pool is quiet (no warm in flight anywhere) before the fourth daemon joins.
    eventually("no claim held", Duration::from_secs(20), || async {
        c.claims().await.is_empty().then_some(())
    })
    .await;
    let full = c.wait_served(3, Duration::from_secs(10)).await;
    joining_daemon_serves_at_once_and_warms_nothing(&mut c, &full).await;
    if let Some(seen) = overshoot {
        panic!("pool_size 3 over 3 daemons must hold exactly 3 sessions:\n{seen}");
    }
}

/// Any daemon serves any session: usage reports from every daemon on one record, exclusive
/// leases across daemons, deletion and retirement seen by every daemon within 1 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_daemon_serves_any_session() {
    let c = Cluster::start(3, Options::default()).await;
    let served = c.wait_served(3, Duration::from_secs(45)).await;
    let not_shown = reports_from_every_daemon_land_on_one_record(&c, &served).await;
    leases_are_exclusive_across_daemons(&c).await;
    deleted_and_retired_are_served_by_none_within_1s(&c).await;
    assert!(
        not_shown.is_empty(),
        "the store counted 3,000 reports but the record shows otherwise: {not_shown:?}"
    );
}

async fn joining_daemon_serves_at_once_and_warms_nothing(c: &mut Cluster, full: &BTreeSet<String>) {
    let t0 = Instant::now();
    let i = c.nodes.len();
    let node = c.spawn_node(i);
    let url = format!("{}/api/sessions/event/{EVENT}", node.base);
    // The first answer the new daemon gives to a take (connection refused until it listens).
    let (code, body) = eventually(
        "the joining daemon to answer",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                match client().get(&url).send().await {
                    Ok(r) => Some((r.status().as_u16(), r.text().await.unwrap_or_default())),
                    Err(e) if e.is_connect() => None,
                    Err(e) => panic!("the joining daemon's first take: {e}"),
                }
            }
        },
    )
    .await;
    let served_after = t0.elapsed();
    c.nodes.push(node);
    assert_eq!(code, 200, "the joining daemon's first take: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = v["session_id"].as_str().unwrap();
    assert!(full.contains(id), "it serves a stored session: {id}");
    println!("the joining daemon served after {served_after:?}");

    let node = &c.nodes[i];
    let hold = Instant::now() + Duration::from_secs(3);
    while Instant::now() < hold {
        assert_eq!(
            &c.stored().await,
            full,
            "the joining daemon warms nothing new"
        );
        let claims = c.claims().await;
        assert!(
            !claims.values().any(|n| n == &node.name),
            "the joining daemon claims no warm: {claims:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(node.metric_sum("warmer_warms_total").await, 0.0);
    assert_eq!(&node.active().await, full);
}

/// Refresh, validation and rotation forced through all three daemons at once: each session is
/// refreshed, validated and replaced by one daemon only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_work_asked_of_every_daemon_is_done_once() {
    let c = Cluster::start(3, Options::default()).await;
    let before = c.wait_served(3, Duration::from_secs(45)).await;
    let everywhere = |path: &'static str| {
        futures::future::join_all(c.nodes.iter().map(move |n| async move {
            let r = client()
                .post(format!("{}{path}", n.base))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "{}: {path}: {}",
                n.name,
                r.status()
            );
            r.json::<serde_json::Value>().await.unwrap()
        }))
    };
    let sum = |answers: &[serde_json::Value], field: &str| -> u64 {
        answers.iter().map(|v| v[field].as_u64().unwrap()).sum()
    };

    let refreshed = everywhere("/api/cookies/refresh").await;
    assert_eq!(sum(&refreshed, "failed"), 0, "{refreshed:?}");
    assert_eq!(
        sum(&refreshed, "refreshed"),
        3,
        "one refresh per session: {refreshed:?}"
    );
    let audited = c.audited("refresh").await;
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(audited.values().all(|n| *n == 1), "{audited:?}");

    let validated = everywhere("/api/sessions/validate").await;
    assert_eq!(sum(&validated, "retired"), 0, "{validated:?}");
    assert_eq!(
        sum(&validated, "passed"),
        3,
        "one validation per session: {validated:?}"
    );

    let rotated = everywhere("/api/sessions/rotate").await;
    println!("rotations started per daemon: {rotated:?}");
    // The three old sessions retired (each once its replacement was stored), three
    // replacements served, nothing more warmed.
    eventually(
        "the old sessions retired",
        Duration::from_secs(60),
        || async {
            let states = c.states().await;
            before
                .iter()
                .all(|id| states.get(id).is_some_and(|s| s == "retired"))
                .then_some(())
        },
    )
    .await;
    let after = c.wait_served(3, Duration::from_secs(30)).await;
    assert!(after.is_disjoint(&before), "{before:?} -> {after:?}");
    let states = c.states().await;
    assert_eq!(
        states.len(),
        6,
        "3 rotated + 3 replacements, no more: {states:?}"
    );
}

/// Returns where the record does not show the 3,000 (empty when all do).
async fn reports_from_every_daemon_land_on_one_record(
    c: &Cluster,
    full: &BTreeSet<String>,
) -> Vec<String> {
    let id = full.iter().next().unwrap().clone();
    let http = client();
    let mut calls = Vec::new();
    for n in &c.nodes[..3] {
        for _ in 0..1000 {
            let url = format!("{}/api/sessions/{id}/usage", n.base);
            let http = http.clone();
            calls.push(async move {
                let r = http
                    .post(&url)
                    .json(&serde_json::json!({"success": true, "status": 200}))
                    .send()
                    .await
                    .expect("the report is answered");
                r.status().as_u16()
            });
        }
    }
    let t = Instant::now();
    let codes: Vec<u16> = futures::stream::iter(calls)
        .buffer_unordered(300)
        .collect()
        .await;
    println!("3,000 reports in {:?}", t.elapsed());
    assert!(codes.iter().all(|&c| c == 200), "every report answered 200");

    // The shared counters: no increment lost.
    let mut r = c.redis().await;
    let successes: Option<u64> = redis::cmd("HGET")
        .arg(Cluster::key(&format!("u:{id}")))
        .arg("successes")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(successes, Some(3000), "the store counted every report");

    // The record as every daemon shows it, and as the CLI reads it from Redis (checked after
    // the other cases, so that one failing does not hide the others).
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    for n in &c.nodes {
        let url = format!("{}/api/v1/sessions/{id}", n.base);
        let shown = loop {
            let (_, body) = cluster::get(&url).await.expect("the daemon answers");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if v["successes"] == 3000 || Instant::now() > deadline {
                break v["successes"].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        seen.push(format!("{}: {shown}", n.name));
    }
    let cli: serde_json::Value = serde_json::from_str(&c.cli(&["sessions", "show", &id])).unwrap();
    seen.push(format!(
        "warmer sessions show: {}",
        cli["health"]["successes"]
    ));
    seen.retain(|s| !s.ends_with(": 3000"));
    seen
}

async fn leases_are_exclusive_across_daemons(c: &Cluster) {
    let mut held = BTreeSet::new();
    // Three daemons each take one with a lease: three different sessions.
    for n in &c.nodes[..3] {
        let (code, v) = n.take(EVENT, Some("30s")).await;
        assert_eq!(code, 200, "{}: {v}", n.name);
        let id = v["session_id"].as_str().unwrap().to_string();
        assert!(
            held.insert(id.clone()),
            "{} handed out {id}, held elsewhere",
            n.name
        );
    }
    // All three held: every daemon answers 503, or a session held by nobody.
    for n in &c.nodes {
        let (code, v) = n.take(EVENT, Some("30s")).await;
        match code {
            503 => {}
            200 => {
                let id = v["session_id"].as_str().unwrap();
                assert!(
                    !held.contains(id),
                    "{} handed out {id}, held elsewhere",
                    n.name
                );
            }
            _ => panic!("{}: {code} {v}", n.name),
        }
    }
    // Reports end the holds (so the next checks can take every session).
    for id in &held {
        let r = client()
            .post(format!("{}/api/sessions/{id}/usage", c.nodes[0].base))
            .json(&serde_json::json!({"success": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

async fn deleted_and_retired_are_served_by_none_within_1s(c: &Cluster) {
    let ids: Vec<String> = c.nodes[0].active().await.into_iter().collect();
    let (deleted, retired) = (&ids[0], &ids[1]);

    let r = client()
        .delete(format!("{}/api/v1/sessions/{deleted}", c.nodes[0].base))
        .send()
        .await
        .unwrap();
    let since = Instant::now();
    assert!(r.status().is_success(), "delete: {}", r.status());
    gone_everywhere(c, deleted, "deleted", since).await;

    let r = client()
        .post(format!("{}/api/sessions/{retired}/usage", c.nodes[1].base))
        .json(&serde_json::json!({"success": false, "status": 403}))
        .send()
        .await
        .unwrap();
    let since = Instant::now();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["verdict"], "retired", "{v}");
    gone_everywhere(c, retired, "retired", since).await;
}

/// No daemon lists `id` as served in any answer to a question asked later than 1 s after
/// `since` (all asked at once, every 20 ms, each answer timed from when it was asked: the
/// daemon's view is at least that late; until none lists it), and then no take on any daemon
/// hands it out.
async fn gone_everywhere(c: &Cluster, id: &str, what: &str, since: Instant) {
    loop {
        let answers = futures::future::join_all(c.nodes.iter().map(|n| async move {
            let asked = since.elapsed();
            let listed = n.active().await.contains(id);
            (n.name.as_str(), listed, asked)
        }))
        .await;
        let late: Vec<_> = answers
            .iter()
            .filter(|(_, listed, asked)| *listed && *asked >= Duration::from_secs(1))
            .collect();
        assert!(late.is_empty(), "the {what} session still served: {late:?}");
        if answers.iter().all(|(_, listed, _)| !listed) {
            let at = answers.iter().map(|a| a.2).max().unwrap_or_default();
            println!("the {what} session is served by none after {at:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for n in &c.nodes {
        for _ in 0..10 {
            let (code, v) = n.take(EVENT, None).await;
            if code == 200 {
                assert_ne!(
                    v["session_id"], id,
                    "{} hands out the {what} session",
                    n.name
                );
            }
        }
    }
}

/// SIGKILL of a daemon in the middle of a warm it claimed: another daemon takes it over once
/// the claim lapses, the pool fills, nothing stored is lost, nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemons_warm_is_taken_over() {
    let options = Options {
        pool_size: 3,
        // Long warms, to find one in flight.
        warmup: Duration::from_secs(4),
        lease_ttl: Duration::from_secs(3),
    };
    let ttl = options.lease_ttl;
    let mut c = Cluster::start(3, options).await;

    // A claim in flight, and which daemon holds it.
    let (item, holder) = eventually("a claimed warm", Duration::from_secs(30), || async {
        c.claims().await.into_iter().next()
    })
    .await;
    let victim = c
        .nodes
        .iter()
        .position(|n| n.name == holder)
        .unwrap_or_else(|| panic!("claim {item} held by an unknown node {holder:?}"));
    let before = c.stored().await;
    let (launched, children, _) = c.nodes[victim].leftovers();
    assert!(
        launched.is_empty() && children.is_empty(),
        "{holder} started no process"
    );
    c.nodes[victim].kill9();
    let killed = Instant::now();
    println!("killed {holder} holding {item}; stored then: {before:?}");

    // Taken over: the same item claimed by another daemon, after the claim lapsed.
    let what = format!("{item} taken over (survivors' logs: {})", survivors_log(&c));
    let by = eventually(&what, ttl * 4, || async {
        let claims = c.claims().await;
        match claims.get(&item) {
            Some(n) if n != &holder => Some(n.clone()),
            _ => None,
        }
    })
    .await;
    let after = killed.elapsed();
    println!("{item} taken over by {by} after {after:?} (lease_ttl {ttl:?})");
    assert!(
        after >= ttl / 2,
        "taken over after {after:?}: before the claim (renewed every ttl/3) could lapse"
    );

    // The pool fills again: pool_size sessions, every one stored before still there.
    let full = c.wait_full(3, Duration::from_secs(45)).await;
    assert!(
        before.is_subset(&full),
        "stored before {before:?}, after {full:?}"
    );

    // The killed daemon left nothing: no Chromium of its own, no temp files; the shared
    // browser still runs.
    let (launched, children, files) = c.nodes[victim].leftovers();
    assert!(
        launched.is_empty(),
        "Chromium launched by {holder}: {launched:?}"
    );
    assert!(children.is_empty(), "children of {holder}: {children:?}");
    assert!(files.is_empty(), "{holder} left {files:?}");
    assert!(c.chrome.running(), "the shared Chromium survives");

    // The survivors stop cleanly and leave nothing either.
    for n in &mut c.nodes {
        if n.pid().is_some() {
            assert!(n.leftovers().0.is_empty(), "{} launched Chromium", n.name);
            n.stop();
            let (_, _, files) = n.leftovers();
            assert!(files.is_empty(), "{} left {files:?}", n.name);
        }
    }
}

/// A daemon stalled (SIGSTOP) in the middle of a warm it claimed: another daemon takes the
/// warm over once the claim lapses and commits it; when the stalled one resumes, its late
/// write is refused (fencing): the pool holds the taker's session alone, which every daemon
/// (the stalled one too) serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_daemons_late_write_is_refused() {
    let options = Options {
        pool_size: 1,
        warmup: Duration::from_secs(3),
        lease_ttl: Duration::from_secs(3),
    };
    let c = Cluster::start(3, options).await;
    let (item, holder) = eventually("a claimed warm", Duration::from_secs(30), || async {
        c.claims().await.into_iter().next()
    })
    .await;
    let stalled = c.nodes.iter().find(|n| n.name == holder).unwrap();
    stalled.freeze(true);
    let what = format!("{item} taken over from the stalled {holder} and committed");
    let (id, by) = eventually(&what, Duration::from_secs(30), || async {
        let stored = c.stored().await;
        let id = stored.into_iter().next()?;
        let by = c.warmed_by(&id).await;
        Some((id, by))
    })
    .await;
    stalled.freeze(false);
    println!("{item}: {holder} stalled, {by} committed {id}");
    assert_ne!(
        by, holder,
        "the stalled daemon's claim lapsed: it cannot have committed"
    );

    // Resumed, the stalled daemon finds its claim lost and writes nothing.
    eventually(
        "the stalled daemon to see its claim lost",
        Duration::from_secs(20),
        || async { stalled.log().contains("claim lost").then_some(()) },
    )
    .await;
    let full = c.wait_full(1, Duration::from_secs(10)).await;
    let hold = Instant::now() + Duration::from_secs(2);
    while Instant::now() < hold {
        assert_eq!(c.stored().await, full, "nothing more is stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(full.into_iter().collect::<Vec<_>>(), vec![id]);
}

/// The logs of the daemons still running, for a failure message.
fn survivors_log(c: &Cluster) -> String {
    c.nodes
        .iter()
        .filter(|n| n.pid().is_some())
        .map(|n| format!("\n--- {}\n{}", n.name, n.log()))
        .collect()
}
