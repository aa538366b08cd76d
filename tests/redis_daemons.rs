//! Daemons (in process, the real `Daemon`) on a real `redis-server` (tests/common/redis.rs:
//! Debian's, one per test, on a free port; missing, the tests fail loudly, never skip). The
//! daemons attach to a remote browser nobody runs, so they launch no Chromium and warm nothing:
//! they serve the sessions the test writes into Redis, which is what these tests are about.
//!
//! - Redis goes away (frozen with SIGSTOP, then killed) and comes back on the same port: the
//!   daemon stays up, `/healthz` stays 200, `/readyz` answers 503 saying the store is down and
//!   why (no password in it), a take without a lease is served from what the daemon last knew,
//!   a leased take answers 503 `store_unavailable` with `Retry-After` (never 500, never a hang);
//!   within 5 s of Redis coming back all is normal again.
//! - The cluster view: two daemons beat a heartbeat into Redis; each one's `/metrics` and
//!   `/api/status` list both.
//! - A session one daemon holds exclusively (`?lease=`) is served by no other daemon, leased or
//!   not, until the hold ends.

mod common;
#[path = "common/redis.rs"]
mod redis_server;

use common::daemon::start;
use redis_server::RedisServer;
use session_warmer::config::{Config, SecretUrl, StoreBackend, StoreConfig};
use session_warmer::session::{now_ms, Session, SessionState};
use session_warmer::store::{self, Backend};
use std::time::{Duration, Instant};

/// The most any one API answer may take while Redis is away: the store's call bound (2 s)
/// plus scheduling on a loaded machine. A hang would exceed it.
const ANSWER_BOUND: Duration = Duration::from_secs(4);

/// How soon after Redis is back everything must be normal (the bound).
const BACK_WITHIN: Duration = Duration::from_secs(5);

/// A port nothing listens on: the remote browser nobody runs.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon config on `redis` under `prefix`, one target `tickets` of pool size `pool`, a
/// remote browser nobody runs, node name `node`.
fn config(redis: &RedisServer, prefix: &str, node: &str, pool: usize) -> Config {
    let closed = closed_port();
    let text = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\nprefix = \"{prefix}\"\n\
         [cluster]\nnode = \"{node}\"\n\
         [browser]\nendpoint = \"http://127.0.0.1:{closed}\"\n\
         [[targets]]\nname = \"tickets\"\n\
         event_url = \"http://127.0.0.1:{closed}/event/{{event}}\"\n\
         events = [\"123\"]\npool_size = {pool}\n",
        redis.url()
    );
    Config::parse(&text, "redis_daemons test").expect("config parses")
}

/// The test's own view of the Redis store (as another process would open it).
async fn backend(redis: &RedisServer, prefix: &str) -> Backend {
    let config = StoreConfig {
        backend: StoreBackend::Redis,
        url: Some(SecretUrl::new(redis.url())),
        prefix: prefix.to_string(),
        ..StoreConfig::default()
    };
    store::open(&config, None)
        .await
        .expect("the Redis store opens")
}

/// A ready session of `tickets`, fresh for an hour.
fn session(id: &str) -> Session {
    let mut s: Session = serde_json::from_str(include_str!("fixtures/session_v1.json")).unwrap();
    let now = now_ms();
    s.id = id.into();
    s.target = "tickets".into();
    s.event = Some("123".into());
    s.state = SessionState::Ready;
    s.proxy = None;
    s.created_at = now;
    s.refreshed_at = now;
    s.expires_at = now + 3_600_000;
    s
}

/// Writes `ids` as ready sessions into the store.
async fn put_sessions(b: &Backend, ids: &[&str]) {
    for id in ids {
        b.records.put_session(&session(id)).await.unwrap();
    }
}

/// An HTTP client with no proxy and a bound well above [`ANSWER_BOUND`] (so a hang shows as a
/// slow answer the test measures, not as a client error).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// `GET url`: status, `Retry-After`, JSON body (Null when not JSON), and how long it took.
async fn get(c: &reqwest::Client, url: &str) -> (u16, Option<String>, serde_json::Value, Duration) {
    let t = Instant::now();
    let r = c
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    (status, retry, body, t.elapsed())
}

/// Polls `f` every 50 ms until it returns `Some`, failing after `deadline`; returns the value
/// and how long it took.
async fn within<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return (v, start.elapsed());
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `/readyz` answers 200 with the store `ok`; returns how long it took.
async fn until_ready(c: &reqwest::Client, base: &str, deadline: Duration) -> Duration {
    let url = format!("{base}/readyz");
    within("/readyz 200 with the store ok", deadline, || async {
        let (status, _, body, _) = get(c, &url).await;
        (status == 200 && body["store"] == "ok").then_some(())
    })
    .await
    .1
}

/// The checks while Redis is away (frozen or killed): the daemon answers every one of them
/// within [`ANSWER_BOUND`], and what needs the store says so with a 503 and `Retry-After`.
async fn while_away(c: &reqwest::Client, base: &str, password: &str, how: &str) {
    let (status, _, body, took) = get(c, &format!("{base}/healthz")).await;
    assert_eq!(status, 200, "{how}: /healthz {body}");
    assert!(
        took < Duration::from_secs(1),
        "{how}: /healthz took {took:?}"
    );

    // Served from what the daemon last knew: no store call on the way.
    let (status, _, body, took) = get(c, &format!("{base}/api/sessions/event/123")).await;
    assert_eq!(status, 200, "{how}: take without a lease: {body}");
    assert!(body["session_id"].is_string(), "{body}");
    assert!(took < Duration::from_secs(1), "{how}: take took {took:?}");

    // An exclusive lease needs a hold across daemons: refused, saying when to come back.
    let (status, retry, body, took) =
        get(c, &format!("{base}/api/sessions/event/123?lease=30s")).await;
    assert_eq!(status, 503, "{how}: leased take: {body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{how}: {body}");
    let retry: u64 = retry
        .unwrap_or_else(|| panic!("{how}: Retry-After on the leased take"))
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{how}: Retry-After {retry}");
    assert!(took < ANSWER_BOUND, "{how}: leased take took {took:?}");

    // Not ready, and why: where the store is (no password) and what failed.
    let (status, _, body, took) = get(c, &format!("{base}/readyz")).await;
    assert_eq!(status, 503, "{how}: /readyz {body}");
    assert_eq!(body["ready"], false, "{body}");
    let store = body["store"].as_str().unwrap();
    assert!(store.starts_with("down: "), "{how}: {store}");
    assert!(store.contains("redis://"), "{how}: says where: {store}");
    assert!(
        !store.contains(password),
        "{how}: leaks the password: {store}"
    );
    assert!(took < ANSWER_BOUND, "{how}: /readyz took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_keeps_serving_what_it_knew_and_is_normal_within_5s_of_its_return() {
    let password = "s3cret-outage-pw";
    let redis = RedisServer::start_with_password(password);
    let prefix = "outage";
    let b = backend(&redis, prefix).await;
    put_sessions(&b, &["o1", "o2"]).await;
    let (daemon, base) = start(config(&redis, prefix, "warmer-a", 2)).await;
    let c = client();
    until_ready(&c, &base, Duration::from_secs(10)).await;
    let (status, _, body, _) = get(&c, &format!("{base}/readyz")).await;
    assert_eq!(
        (status, &body["ready_sessions"]),
        (200, &2.into()),
        "{body}"
    );

    // Frozen: connections stay open, nothing answers (a network that drops packets).
    redis.freeze(true);
    while_away(&c, &base, password, "frozen").await;
    redis.freeze(false);
    let took = until_ready(&c, &base, BACK_WITHIN).await;
    eprintln!("normal {took:?} after the thaw");
    let (status, _, body, _) = get(&c, &format!("{base}/api/sessions/event/123?lease=30s")).await;
    assert_eq!(status, 200, "leased take after the thaw: {body}");

    // Killed: connections refused. It comes back empty (nothing persisted), so the test writes
    // the sessions again, as a store restored from its append-only file would hold them.
    redis.kill();
    while_away(&c, &base, password, "killed").await;
    redis.restart();
    let back = Instant::now();
    // The test's own connection notices the restart on its first call, as any client does.
    within(
        "the test's writes after the restart",
        BACK_WITHIN,
        || async {
            for id in ["o1", "o2"] {
                b.records.put_session(&session(id)).await.ok()?;
            }
            Some(())
        },
    )
    .await;
    until_ready(&c, &base, BACK_WITHIN).await;
    let (_, took) = within("a leased take after the restart", BACK_WITHIN, || async {
        let (status, _, _, _) = get(&c, &format!("{base}/api/sessions/event/123?lease=30s")).await;
        (status == 200).then_some(())
    })
    .await;
    assert!(
        back.elapsed() < BACK_WITHIN,
        "normal {took:?} after the restart"
    );
    eprintln!("normal {:?} after the restart", back.elapsed());
    daemon.shutdown().await;
}

/// `GET url` as text (must succeed).
async fn text(c: &reqwest::Client, url: &str) -> String {
    let r = c.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daemon_shows_the_cluster_in_metrics_and_status() {
    let redis = RedisServer::start();
    let prefix = "view";
    let (a, base_a) = start(config(&redis, prefix, "warmer-a", 1)).await;
    let (b, base_b) = start(config(&redis, prefix, "warmer-b", 1)).await;
    let c = client();
    for (me, base) in [("warmer-a", &base_a), ("warmer-b", &base_b)] {
        let metrics_url = format!("{base}/metrics");
        // Both beat at start, then every 3 s: each one sees both within a few seconds.
        let (metrics, _) = within(
            &format!("{me} sees two daemons"),
            Duration::from_secs(10),
            || {
                let (c, url) = (&c, &metrics_url);
                async move {
                    let m = text(c, url).await;
                    m.contains("\nwarmer_cluster_daemons 2\n").then_some(m)
                }
            },
        )
        .await;
        for line in [
            "warmer_cluster_heartbeat_age_seconds{node=\"warmer-a\"}",
            "warmer_cluster_heartbeat_age_seconds{node=\"warmer-b\"}",
            "\nwarmer_cluster_heartbeat_up 1\n",
            "\nwarmer_cluster_claims_held ",
            "# TYPE warmer_cluster_takeovers_total counter",
            "\nwarmer_cluster_takeovers_total ",
            "\nwarmer_cluster_lease_losses_total ",
        ] {
            assert!(metrics.contains(line), "{me}: {line} missing:\n{metrics}");
        }
        let status: serde_json::Value =
            serde_json::from_str(&text(&c, &format!("{base}/api/status")).await).unwrap();
        assert_eq!(status["shared"], true, "{status}");
        assert_eq!(status["cluster"]["node"], me, "{status}");
        assert_eq!(status["cluster"]["daemonsSeen"], 2, "{status}");
        assert!(status["cluster"]["heartbeatError"].is_null(), "{status}");
        for field in ["claimsHeld", "takeovers", "leaseLosses"] {
            assert!(status["cluster"][field].is_u64(), "{field}: {status}");
        }
        let daemons = status["daemons"].as_array().unwrap();
        let nodes: Vec<&str> = daemons
            .iter()
            .map(|d| d["node"].as_str().unwrap())
            .collect();
        assert_eq!(nodes.len(), 2, "{status}");
        assert_eq!(nodes[0], me, "this daemon first: {status}");
        assert_eq!(daemons[0]["this"], true);
        assert_eq!(daemons[1]["this"], false);
        assert!(
            daemons[1]["lastBeatSecondsAgo"].as_f64().unwrap() < 15.0,
            "{status}"
        );
    }

    // Redis away: the view says the heartbeat does not get through (and the daemons seen stay
    // as last known), the answers never wait on the store.
    redis.kill();
    let url = format!("{base_a}/metrics");
    within(
        "the heartbeat seen down",
        Duration::from_secs(10),
        || async {
            text(&c, &url)
                .await
                .contains("\nwarmer_cluster_heartbeat_up 0\n")
                .then_some(())
        },
    )
    .await;
    let (status, _, body, took) = get(&c, &format!("{base_a}/api/status")).await;
    assert_eq!(status, 200, "{body}");
    assert!(took < Duration::from_secs(1), "/api/status took {took:?}");
    assert!(body["cluster"]["heartbeatError"].is_string(), "{body}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_one_daemon_holds_is_served_by_no_other_until_released() {
    let redis = RedisServer::start();
    let prefix = "holds";
    let b = backend(&redis, prefix).await;
    put_sessions(&b, &["h1"]).await;
    let (da, base_a) = start(config(&redis, prefix, "warmer-a", 1)).await;
    let (db, base_b) = start(config(&redis, prefix, "warmer-b", 1)).await;
    let c = client();
    until_ready(&c, &base_a, Duration::from_secs(10)).await;
    until_ready(&c, &base_b, Duration::from_secs(10)).await;
    let (status, _, body, _) = get(&c, &format!("{base_a}/api/sessions/event/123?lease=30s")).await;
    assert_eq!(
        (status, body["session_id"].as_str()),
        (200, Some("h1")),
        "{body}"
    );
    // b learns of the hold at its next resync (every 300 ms): no take hands it out there.
    let take_b = format!("{base_b}/api/sessions/event/123");
    within(
        "b refusing the held session",
        Duration::from_secs(3),
        || async {
            let (status, _, _, _) = get(&c, &take_b).await;
            (status == 503).then_some(())
        },
    )
    .await;
    for _ in 0..5 {
        let (status, _, body, _) = get(&c, &take_b).await;
        assert_eq!(status, 503, "b served a session a holds: {body}");
    }
    // The scraper reports to a: the hold ends, and b serves the session again.
    let r = c
        .post(format!("{base_a}/api/sessions/h1/usage"))
        .json(&serde_json::json!({"success": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "report: {}", r.status());
    within(
        "b serving the released session",
        Duration::from_secs(3),
        || async {
            let (status, _, _, _) = get(&c, &take_b).await;
            (status == 200).then_some(())
        },
    )
    .await;
    da.shutdown().await;
    db.shutdown().await;
}
