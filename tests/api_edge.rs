//! The HTTP edge of the real daemon on 127.0.0.1:0, over raw HTTP/1.1 (so `Host` and `Origin`
//! are exactly what a browser under attack would send): the `Host` rule without a token (DNS
//! rebinding), foreign `Origin`s and CORS, the bearer scheme's case, the dashboard with a token
//! (its page holds no data; in a real headless Chromium it signs in with the token and shows
//! the stats), `/metrics` through `promtool check metrics`, the OpenAPI document with and
//! without a token, and the JSON error of a 100 kB path.
//!
//! The daemon's own browser is pointed at a path that does not exist (its warms fail; nothing
//! here needs a warm session); the dashboard test drives its own real Chromium.

mod common;

use common::eventually;
use serde_json::Value;
use session_warmer::config::Config;
use session_warmer::daemon::Daemon;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "edge-test-token-0123456789abcdef";
/// A target name that must never appear in the dashboard's page itself.
const TARGET: &str = "edgetarget-7f3a";

struct Api {
    daemon: Option<Daemon>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Api {
    /// A daemon with `[server]` lines `server` (and the token when `token`).
    async fn start(server: &str, token: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_line = if token {
            let f = dir.path().join("token");
            std::fs::write(&f, TOKEN).unwrap();
            format!("token_file = {:?}", f.display().to_string())
        } else {
            String::new()
        };
        let text = format!(
            r#"
[server]
{token_line}
{server}

[browser]
executable = "/nonexistent/session-warmer-edge-test/chromium"

[store]
path = {store:?}

[[targets]]
name = "{TARGET}"
event_url = "http://127.0.0.1:9/event/{{event}}"
events = ["1"]
pool_size = 1
"#,
            store = dir.path().join("store").display().to_string(),
        );
        let config = Config::parse(&text, "api_edge test").expect("config parses");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let daemon = Daemon::start(config, Some(listener))
            .await
            .expect("daemon starts");
        let addr = daemon.addr;
        Self {
            daemon: Some(daemon),
            addr,
            _dir: dir,
        }
    }

    /// `Host` as a client of this address sends it.
    fn host(&self) -> String {
        self.addr.to_string()
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let host = self.host();
        let mut h = vec![("Host", host.as_str())];
        h.extend_from_slice(headers);
        raw(self.addr, "GET", path, &h, None).await
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await;
        }
    }
}

/// A response read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    /// A JSON error with this status and code, and no CORS header.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{self:?}"
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(
            self.header("access-control-allow-origin").is_none(),
            "{self:?}"
        );
    }
}

/// One request on a fresh connection (`Connection: close`), exactly these headers.
async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("Connection: close\r\n\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        // The server may close while a huge request is still being written; what it answered
        // before is what counts.
        let _ = s.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("an answer within 10 s");
    parse(&out)
}

/// Evaluates `expr` in the page.
async fn js(ctx: &session_warmer::browser::BrowserContext, expr: String) -> Value {
    // Always a string back (an exception's text too), so a page error shows in the assertion.
    let wrapped = format!(
        "(() => {{ try {{ return JSON.stringify({expr}); }} \
         catch (e) {{ return JSON.stringify('exception: ' + e); }} }})()"
    );
    let text: String = ctx.evaluate(&wrapped).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

fn parse(out: &[u8]) -> Resp {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(out)));
    let head = String::from_utf8_lossy(&out[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = out[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..i]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(&rest[i + 2..i + 2 + size]);
            rest = &rest[i + 2 + size + 2..];
        }
        body = decoded;
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

#[tokio::test]
async fn without_a_token_only_loopback_or_listed_hosts_are_served() {
    let api = Api::start(
        r#"allowed_hosts = ["warmer.lan", "dash.example:8080"]"#,
        false,
    )
    .await;
    let port = api.addr.port();
    // DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1. Every route,
    // /healthz and unknown paths included, and POSTs too.
    let evil = format!("evil.example:{port}");
    for path in [
        "/healthz",
        "/readyz",
        "/",
        "/metrics",
        "/openapi.json",
        "/api/sessions/stats",
        "/api/sessions/active",
        "/api/sessions/event/1",
        "/no/such/route",
    ] {
        let r = raw(api.addr, "GET", path, &[("Host", &evil)], None).await;
        r.assert_error(421, "host_not_allowed");
    }
    let r = raw(
        api.addr,
        "POST",
        "/api/sessions/rotate",
        &[("Host", &evil)],
        Some("{}"),
    )
    .await;
    r.assert_error(421, "host_not_allowed");
    for host in [
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        "128.0.0.1".to_string(),
        "[::2]".to_string(),
        "dash.example:8081".to_string(),
        "dash.example".to_string(),
        String::new(),
    ] {
        let r = raw(api.addr, "GET", "/healthz", &[("Host", &host)], None).await;
        r.assert_error(421, "host_not_allowed");
    }
    // No Host at all.
    let r = raw(api.addr, "GET", "/healthz", &[], None).await;
    r.assert_error(421, "host_not_allowed");

    // Loopback names and addresses, any port, and the listed names.
    for host in [
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        "127.1.2.3:80".to_string(),
        format!("localhost:{port}"),
        "LocalHost".to_string(),
        format!("[::1]:{port}"),
        "[::1]".to_string(),
        "warmer.lan:1234".to_string(),
        "WARMER.lan".to_string(),
        "dash.example:8080".to_string(),
    ] {
        for path in ["/healthz", "/api/sessions/stats"] {
            let r = raw(api.addr, "GET", path, &[("Host", &host)], None).await;
            assert_eq!(r.status, 200, "Host {host:?} {path}: {r:?}");
        }
    }
    // Refusals are counted like any answer.
    let m = api.get("/metrics", &[]).await;
    assert!(
        m.body
            .contains("warmer_api_requests_total{route=\"/healthz\",status=\"421\"}"),
        "{}",
        m.body
    );
    api.stop().await;
}

#[tokio::test]
async fn with_a_token_the_host_rule_is_off_and_the_bearer_scheme_is_case_insensitive() {
    let api = Api::start("", true).await;
    let bearer = |scheme: &str| format!("{scheme} {TOKEN}");
    // Behind a name (a container's, a proxy's), the token is what protects.
    let r = raw(
        api.addr,
        "GET",
        "/api/sessions/stats",
        &[
            ("Host", "warmer:3000"),
            ("Authorization", &bearer("Bearer")),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let auth = bearer(scheme);
        let r = api
            .get("/api/sessions/stats", &[("Authorization", &auth)])
            .await;
        assert_eq!(r.status, 200, "{scheme}: {r:?}");
    }
    for auth in [
        "Bearer wrong-token-0123456789".to_string(),
        format!("Basic {TOKEN}"),
        format!("Bearer{TOKEN}"),
        "Bearer".to_string(),
    ] {
        let r = api
            .get("/api/sessions/stats", &[("Authorization", &auth)])
            .await;
        r.assert_error(401, "unauthorized");
    }
    let r = api.get("/api/sessions/stats", &[]).await;
    r.assert_error(401, "unauthorized");
    api.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_only_listed_origins_get_cors() {
    let listed = "http://dash.example:8080";
    let api = Api::start(&format!("allowed_origins = [\"{listed}/\"]"), false).await;
    let other_local = format!("http://127.0.0.1:{}", api.addr.port() + 1);
    let foreign = [
        "http://evil.example",
        "null",
        "https://dash.example:8080",
        "http://dash.example:8081",
        other_local.as_str(),
    ];
    for origin in foreign {
        for path in ["/healthz", "/api/sessions/stats", "/"] {
            let r = api.get(path, &[("Origin", origin)]).await;
            r.assert_error(403, "origin_not_allowed");
        }
        let host = api.host();
        let r = raw(
            api.addr,
            "POST",
            "/api/sessions/rotate",
            &[("Host", &host), ("Origin", origin)],
            Some("{}"),
        )
        .await;
        r.assert_error(403, "origin_not_allowed");
        // Its preflight is refused too, with no CORS header.
        let r = raw(
            api.addr,
            "OPTIONS",
            "/api/sessions/rotate",
            &[
                ("Host", &host),
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
            ],
            None,
        )
        .await;
        r.assert_error(403, "origin_not_allowed");
    }

    // The daemon's own origin (a POST from its own dashboard): answered, no CORS headers.
    let own = api.origin();
    let host = api.host();
    let r = raw(
        api.addr,
        "POST",
        "/api/sessions/validate",
        &[("Host", &host), ("Origin", &own)],
        Some("{}"),
    )
    .await;
    assert!(r.status < 300, "{r:?}");
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    let localhost_own = format!("http://localhost:{}", api.addr.port());
    let localhost_host = format!("localhost:{}", api.addr.port());
    let r = raw(
        api.addr,
        "GET",
        "/api/sessions/stats",
        &[("Host", &localhost_host), ("Origin", &localhost_own)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    // No Origin: no CORS headers.
    let r = api.get("/api/sessions/stats", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");

    // The listed origin: answered with CORS headers, its preflight answered.
    let r = api.get("/api/sessions/stats", &[("Origin", listed)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(listed));
    assert!(
        r.header("vary").is_some_and(|v| v.contains("Origin")),
        "{r:?}"
    );
    let r = raw(
        api.addr,
        "OPTIONS",
        "/api/sessions/rotate",
        &[
            ("Host", &host),
            ("Origin", listed),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(listed));
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{r:?}");
    let allowed = r.header("access-control-allow-headers").unwrap_or_default();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{r:?}"
    );
    api.stop().await;
}

#[tokio::test]
async fn the_dashboard_page_holds_no_data_and_the_api_stays_closed_without_the_token() {
    let api = Api::start("", true).await;
    let r = api.get("/", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(r.body.contains("<form"), "a token form: {}", r.body);
    assert!(r.body.contains("sessionStorage"), "{}", r.body);
    assert!(r.body.contains("/api/sessions/stats"), "{}", r.body);
    // Nothing of the pool is in the page itself.
    assert!(!r.body.contains(TARGET), "{}", r.body);
    assert!(!r.body.contains("src=http"), "no external assets");
    let r = api.get("/api/sessions/stats", &[]).await;
    r.assert_error(401, "unauthorized");
    let r = api.get("/metrics", &[]).await;
    r.assert_error(401, "unauthorized");
    api.stop().await;
}

/// The dashboard in a real headless Chromium: the token form on a daemon with a token, then,
/// after typing the token, the stats and the per-target table.
#[tokio::test]
async fn the_dashboard_signs_in_with_the_token_in_chromium() {
    let api = Api::start("", true).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let tracker = tokio_util::task::TaskTracker::new();
    let sup = session_warmer::browser::Supervisor::start(
        common::browser_config(),
        stop.clone(),
        &tracker,
    );
    let ctx = sup.new_context(None).await.expect("a browser context");
    let url = format!("{}/", api.origin());
    ctx.navigate(&url, Duration::from_secs(10))
        .await
        .expect("the dashboard loads");
    eventually("the token form", Duration::from_secs(10), || async {
        let v = js(&ctx, "!document.getElementById('login').hidden".into()).await;
        (v == Value::Bool(true)).then_some(())
    })
    .await;
    let text = js(&ctx, "document.body.innerText".into()).await;
    assert!(!text.as_str().unwrap().contains(TARGET), "{text}");
    js(
        &ctx,
        format!(
            "(document.getElementById('token').value = {TOKEN:?}, \
             document.getElementById('signin').click(), true)"
        ),
    )
    .await;
    let shown = eventually("the stats", Duration::from_secs(10), || async {
        let v = js(
            &ctx,
            "document.getElementById('login').hidden && !document.getElementById('data').hidden \
             ? document.body.innerText : null"
                .into(),
        )
        .await;
        v.as_str().map(str::to_string)
    })
    .await;
    assert!(shown.contains("active of"), "{shown}");
    // The per-target table, when the stats carry `targets`.
    let auth = format!("Bearer {TOKEN}");
    let stats = api
        .get("/api/sessions/stats", &[("Authorization", &auth)])
        .await
        .json();
    if stats["targets"].is_array() {
        assert!(shown.contains(TARGET), "the per-target table: {shown}");
    }
    let stored = js(&ctx, "sessionStorage.getItem('warmer-token')".into()).await;
    assert_eq!(stored, TOKEN);
    let cookies = js(&ctx, "document.cookie".into()).await;
    assert_eq!(cookies, "", "no cookie is set");
    ctx.dispose().await;
    stop.cancel();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(10), tracker.wait())
        .await
        .expect("the browser stops");
    api.stop().await;
}

#[tokio::test]
async fn metrics_pass_promtool_check_metrics() {
    let promtool = "/usr/bin/promtool";
    assert!(
        std::path::Path::new(promtool).exists(),
        "{promtool} is missing: scripts/setup installs Debian's prometheus package for it"
    );
    let api = Api::start("", false).await;
    // Some traffic, so the counters have samples.
    for path in ["/healthz", "/api/sessions/stats", "/no/such"] {
        api.get(path, &[]).await;
    }
    let r = api.get("/metrics", &[]).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.contains("(no description)"), "{}", r.body);
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(r.body.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- metrics ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        r.body
    );
    api.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_dashboard_and_marks_auth_only_with_a_token() {
    let api = Api::start("", false).await;
    let doc = api.get("/openapi.json", &[]).await.json();
    assert!(doc["paths"]["/"]["get"].is_object(), "/ is described");
    let text = doc.to_string();
    assert!(
        !text.contains("\"security\""),
        "no security without a token"
    );
    assert!(doc["components"]["securitySchemes"]
        .as_object()
        .is_none_or(|s| s.is_empty()));
    assert!(doc["paths"]["/api/sessions/stats"]["get"]["responses"]["401"].is_null());
    let lease = doc["paths"]["/api/sessions/event/{eventId}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "lease")
        .cloned()
        .unwrap();
    assert_eq!(lease["schema"]["minLength"], 1, "{lease}");
    // What the schema says: `lease=` is refused.
    let r = api.get("/api/sessions/event/1?lease=", &[]).await;
    r.assert_error(400, "bad_request");
    api.stop().await;

    let api = Api::start("", true).await;
    let auth = format!("Bearer {TOKEN}");
    api.get("/openapi.json", &[])
        .await
        .assert_error(401, "unauthorized");
    let doc = api
        .get("/openapi.json", &[("Authorization", &auth)])
        .await
        .json();
    let stats = &doc["paths"]["/api/sessions/stats"]["get"];
    assert!(stats["security"].is_array(), "{stats}");
    assert!(stats["responses"]["401"].is_object(), "{stats}");
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["paths"]["/"]["get"]["security"].is_null());
    assert!(doc["paths"]["/healthz"]["get"]["security"].is_null());
    api.stop().await;
}

#[tokio::test]
async fn hypers_own_errors_leave_as_json() {
    let api = Api::start("", false).await;
    // A 100 kB path: 414 from hyper, before any route.
    let path = format!("/{}", "a".repeat(100 * 1024));
    let r = api.get(&path, &[]).await;
    r.assert_error(414, "uri_too_long");
    // More headers than hyper takes: 431.
    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("X-Filler-{i}"), "x".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = api.get("/healthz", &many).await;
    r.assert_error(431, "headers_too_large");
    // A request line that is not HTTP: 400.
    let r = raw(api.addr, "GET", "/bad path", &[], None).await;
    r.assert_error(400, "bad_request");
    // The server still answers.
    assert_eq!(api.get("/healthz", &[]).await.status, 200);
    api.stop().await;
}
