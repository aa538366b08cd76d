//! Remote browsers (`browser.endpoint`, `browser.endpoints`) against a real Chromium this test
//! launches itself with `--remote-debugging-port` (and kills and restarts): an http endpoint
//! resolved by the daemon, a ws endpoint whose `?token=` is kept (checked by a small token
//! proxy in front of Chromium), SIGTERM leaving the remote browser running without our
//! contexts, loss detected within 5 s (a SIGKILL, and a clean close frame only the heartbeat
//! notices), stored sessions served meanwhile, reconnecting and warming again, and two
//! endpoints where the survivor takes the work.

mod common;

use common::daemon::{self as fixture, Site};
use common::eventually;
use session_warmer::config::Endpoint;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The flags the project's launcher gives Chromium (src/browser/launch.rs), plus remote
/// debugging on `port` (0: the kernel's choice, read back from `DevToolsActivePort`).
fn chromium_args(profile: &std::path::Path, port: u16) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--password-store=basic",
        "--use-mock-keychain",
        "--mute-audio",
        "--hide-scrollbars",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--remote-debugging-port={port}"));
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// A Chromium started by the test (not by any daemon), under its own dir laid out as a
/// launch's (`profile/`, `tmp/`, `home/`) so its processes can be found and ended.
struct RemoteChrome {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl RemoteChrome {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("remote-chrome-test-")
            .tempdir()
            .unwrap();
        for d in ["profile", "tmp", "home"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let mut c = Self {
            child: None,
            dir,
            port: 0,
        };
        c.launch(0).await;
        c
    }

    /// Launches Chromium on `port` and waits for its DevTools port.
    async fn launch(&mut self, port: u16) {
        let profile = self.dir.path().join("profile");
        let active = profile.join("DevToolsActivePort");
        let _ = std::fs::remove_file(&active);
        let exe = common::browser_config().resolved_executable();
        let child = std::process::Command::new(exe)
            .args(chromium_args(&profile, port))
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env("HOME", self.dir.path().join("home"))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("chromium starts (scripts/setup installs it)");
        self.child = Some(child);
        // Chromium writes DevToolsActivePort only when it picked the port itself.
        if port == 0 {
            self.port = eventually("DevToolsActivePort", Duration::from_secs(20), || async {
                let text = std::fs::read_to_string(&active).ok()?;
                let line = text.lines().next()?;
                line.trim().parse::<u16>().ok()
            })
            .await;
        }
        eventually(
            "/json/version to answer",
            Duration::from_secs(20),
            || async { json_version(self.port).await },
        )
        .await;
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, as a crash would; every process of it ends.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let left = common::processes_under(self.dir.path());
            if left.is_empty() || Instant::now() > end {
                break;
            }
            for pid in left {
                // SAFETY: kill(2) on processes of the browser this test started.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The browser's own websocket URL.
    async fn ws_url(&self) -> String {
        json_version(self.port).await.expect("/json/version")["webSocketDebuggerUrl"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Drop for RemoteChrome {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `GET /json/version`, or `None` when nothing answers.
async fn json_version(port: u16) -> Option<serde_json::Value> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{port}/json/version"))
        .send()
        .await
        .ok()?;
    r.json().await.ok()
}

/// Browser contexts in the browser at `port` besides its default one (`Target.
/// getBrowserContexts`, asked over a connection of the test's own, which creates none).
async fn contexts_in(chrome: &RemoteChrome) -> usize {
    use chromiumoxide::cdp::browser_protocol::target::GetBrowserContextsParams;
    use futures::StreamExt;
    let (browser, mut handler) = chromiumoxide::Browser::connect(chrome.ws_url().await)
        .await
        .expect("the test connects to its browser");
    let task = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let ids = tokio::time::timeout(
        Duration::from_secs(5),
        browser.execute(GetBrowserContextsParams::default()),
    )
    .await
    .expect("Target.getBrowserContexts answers")
    .expect("Target.getBrowserContexts");
    task.abort();
    ids.result.browser_context_ids.len()
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 2..].chars().next())
            .is_some_and(|state| state != 'Z'),
        Err(_) => false,
    }
}

/// A proxy in front of Chromium that refuses every request without `token=<token>` in its
/// query (as browserless does), records each request line and `Host`, and can send every
/// client a clean websocket close frame while keeping the TCP connection open (an
/// intermediary timing a session out): only a heartbeat notices that.
struct TokenProxy {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    cut: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl TokenProxy {
    async fn start(upstream: u16, token: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (seen2, cut2, stop2) = (seen.clone(), cut.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let (client, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
                    _ = stop2.cancelled() => return,
                };
                let seen = seen2.clone();
                let cut = cut2.lock().unwrap().clone();
                let stop = stop2.clone();
                tokio::spawn(proxy_one(client, upstream, token, seen, cut, stop));
            }
        });
        Self {
            port,
            seen,
            cut,
            stop,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Sends every connection open now a close frame and stops relaying it.
    fn close_all(&self) {
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn proxy_one(
    mut client: tokio::net::TcpStream,
    upstream: u16,
    token: &str,
    seen: Arc<Mutex<Vec<String>>>,
    cut: CancellationToken,
    stop: CancellationToken,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let line = text.lines().next().unwrap_or_default().to_string();
    let host = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Host: ")
                .or_else(|| l.strip_prefix("host: "))
        })
        .unwrap_or_default()
        .to_string();
    seen.lock().unwrap().push(format!("{line} | Host: {host}"));
    let target = line.split_whitespace().nth(1).unwrap_or_default();
    let has_token = target
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv == format!("token={token}")));
    if !has_token {
        let _ = client
            .write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )
            .await;
        return;
    }
    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    if up.write_all(&head).await.is_err() {
        return;
    }
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = up.into_split();
    let to_browser = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut uw).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = ur.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => if cw.write_all(&buf[..n]).await.is_err() { break },
            },
            _ = cut.cancelled() => {
                // A clean close (code 1000), then silence on an open connection.
                let _ = cw.write_all(&[0x88, 0x02, 0x03, 0xe8]).await;
                to_browser.abort();
                stop.cancelled().await;
                return;
            }
        }
    }
    to_browser.abort();
}

/// An event that has a ready session in the pool.
fn an_event_with_a_session(d: &session_warmer::daemon::Daemon) -> String {
    d.pool
        .list()
        .into_iter()
        .filter(|(s, _)| s.state == session_warmer::session::SessionState::Ready)
        .find_map(|(s, _)| s.event.clone())
        .expect("a ready session")
}

async fn status_of(url: String) -> u16 {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .request(
            if url.starts_with("POST ") {
                reqwest::Method::POST
            } else {
                reqwest::Method::GET
            },
            url.trim_start_matches("POST "),
        )
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[test]
fn sigterm_leaves_the_remote_chromium_running_without_our_contexts() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site = rt.block_on(Site::start());
    let chrome = rt.block_on(RemoteChrome::start());
    let dir = tempfile::tempdir().unwrap();
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // `localhost`: the daemon resolves the name and asks /json/version by address.
    // The second target warms slowly, so contexts are open in the browser at SIGTERM; it is
    // addressed as localhost, another host, so it does not hold the first one's warm slot.
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{api}\"\n[store]\npath = \"{store}\"\n\
         [schedule]\ntop_up_every = \"300ms\"\n\
         [browser]\nendpoint = \"http://localhost:{port}\"\nnavigation_timeout = \"10s\"\n\
         [[targets]]\nname = \"quick\"\nevent_url = \"{url}\"\nevents = [\"1001\", \"1002\"]\n\
         warmup = \"300ms\"\npool_size = 2\n\
         [[targets]]\nname = \"slow\"\nevent_url = \"{slow_url}\"\nevents = [\"1003\"]\n\
         warmup = \"60s\"\npool_size = 2\nmax_concurrent_warms = 2\n",
        store = dir.path().join("store").display(),
        port = chrome.port,
        url = site.event_url_template(),
        slow_url = site.event_url_template().replace("127.0.0.1", "localhost"),
    );
    let cfg = dir.path().join("warmer.toml");
    std::fs::write(&cfg, toml).unwrap();
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_warmer"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout).to_string();
    let browser_version = rt.block_on(json_version(chrome.port)).unwrap()["Browser"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(check.status.success(), "warmer check: {said}");
    assert!(
        said.contains(&format!(
            "browser     remote http://localhost:{}/ ({browser_version})",
            chrome.port
        )),
        "{said}"
    );
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_warmer"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = daemon.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let base = format!("http://127.0.0.1:{api}");
    rt.block_on(eventually(
        "sessions warmed in the remote browser",
        Duration::from_secs(60),
        || async { (status_of(format!("{base}/readyz")).await == 200).then_some(()) },
    ));
    // The fingerprints follow the remote browser's version.
    let status: serde_json::Value = rt.block_on(async {
        reqwest::get(format!("{base}/api/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let shown = status.to_string();
    assert!(
        shown.contains(&format!("\"version\":\"{browser_version}\""))
            && shown.contains("\"pid\":null"),
        "{shown}"
    );
    let open = rt.block_on(eventually(
        "the slow target's contexts open in the remote browser",
        Duration::from_secs(30),
        || async {
            let n = contexts_in(&chrome).await;
            (n >= 1).then_some(n)
        },
    ));
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let started = Instant::now();
    let exit = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "daemon did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = log.join().unwrap();
    assert!(exit.success(), "{exit:?}\n{log}");
    assert!(alive(chrome.pid()), "the remote Chromium still runs\n{log}");
    assert!(
        rt.block_on(json_version(chrome.port)).is_some(),
        "and answers /json/version"
    );
    let left = rt.block_on(contexts_in(&chrome));
    assert_eq!(
        left, 0,
        "{open} contexts were open; none of ours is left\n{log}"
    );
    assert!(log.contains("left running"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ws_endpoint_keeps_its_token_and_a_silent_close_is_noticed_by_the_heartbeat() {
    let site = Site::start().await;
    let chrome = RemoteChrome::start().await;
    let proxy = TokenProxy::start(chrome.port, "x").await;
    let ws = chrome.ws_url().await;
    let path = ws.split_once("/devtools/").unwrap().1;
    let endpoint = format!("ws://127.0.0.1:{}/devtools/{path}?token=x", proxy.port);
    let dir = tempfile::tempdir().unwrap();
    let mut config = fixture::config(dir.path(), vec![site.target("demo", 2)]);
    config.browser.endpoint = Some(Endpoint::new(endpoint));
    let (d, _base) = fixture::start(config).await;
    fixture::wait_ready(&d, 2, Duration::from_secs(60)).await;
    let sup = d.pool.warmer().supervisor().clone();
    let first = sup.current().unwrap();
    assert!(first.endpoint.as_deref().unwrap().ends_with("?…"));
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("GET /devtools/{path}?token=x "))),
        "the token reached the proxy: {seen:?}"
    );

    // A clean close frame and then silence: only the heartbeat can tell.
    let cut = Instant::now();
    proxy.close_all();
    eventually(
        "the loss to be noticed",
        Duration::from_secs(10),
        || async { sup.current().is_none().then_some(()) },
    )
    .await;
    let noticed = cut.elapsed();
    println!("silent close noticed after {noticed:?}");
    assert!(noticed < Duration::from_secs(5), "{noticed:?}");
    let back = eventually("the reconnect", Duration::from_secs(20), || async {
        sup.current().filter(|b| b.generation > first.generation)
    })
    .await;
    println!("reconnected {:?} after the close", cut.elapsed());
    assert_eq!(back.version.full, first.version.full);
    let with_token = proxy
        .seen()
        .iter()
        .filter(|l| l.contains("?token=x "))
        .count();
    assert!(with_token >= 2, "{:?}", proxy.seen());
    // A fresh warm works on the new connection.
    let s = d.pool.list().into_iter().next().unwrap().0;
    d.pool.delete(&s.id).await.unwrap();
    fixture::wait_ready(&d, 2, Duration::from_secs(60)).await;
    d.shutdown().await;
    assert_eq!(contexts_in(&chrome).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_endpoint_with_a_token_is_resolved_through_the_proxy() {
    let chrome = RemoteChrome::start().await;
    let proxy = TokenProxy::start(chrome.port, "x").await;
    let cfg = session_warmer::config::BrowserConfig {
        endpoint: Some(Endpoint::new(format!(
            "http://localhost:{}/?token=x",
            proxy.port
        ))),
        ..common::browser_config()
    };
    let v = session_warmer::browser::probe_remote(&cfg, cfg.endpoint.as_ref().unwrap())
        .await
        .expect("probe through the proxy");
    assert!(v.major >= 100, "{v:?}");
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET /json/version?token=x ")
                && l.ends_with(&format!("Host: 127.0.0.1:{}", proxy.port))),
        "/json/version asked by address, with the token: {seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.starts_with("GET /devtools/browser/") && l.contains("?token=x ")),
        "the websocket opened with the token: {seen:?}"
    );
    // Without the token: refused, by name, without echoing it.
    let bad = session_warmer::config::BrowserConfig {
        endpoint: Some(Endpoint::new(format!(
            "http://127.0.0.1:{}/?token=nope",
            proxy.port
        ))),
        ..common::browser_config()
    };
    let e = session_warmer::browser::probe_remote(&bad, bad.endpoint.as_ref().unwrap())
        .await
        .unwrap_err();
    let shown = format!("{e}");
    assert!(shown.contains("401") && !shown.contains("nope"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_remote_chromium_is_noticed_served_around_and_reconnected() {
    let site = Site::start().await;
    let mut chrome = RemoteChrome::start().await;
    let port = chrome.port;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fixture::config(dir.path(), vec![site.target("demo", 2)]);
    config.browser.endpoint = Some(Endpoint::new(format!("http://127.0.0.1:{port}")));
    let (d, base) = fixture::start(config).await;
    fixture::wait_ready(&d, 2, Duration::from_secs(60)).await;
    let sup = d.pool.warmer().supervisor().clone();
    let first = sup.current().unwrap();
    let event = an_event_with_a_session(&d);

    let killed = Instant::now();
    chrome.kill9();
    eventually(
        "the loss to be noticed",
        Duration::from_secs(10),
        || async { sup.current().is_none().then_some(()) },
    )
    .await;
    let noticed = killed.elapsed();
    println!("SIGKILL noticed after {noticed:?}");
    assert!(noticed < Duration::from_secs(5), "{noticed:?}");
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("warmer_browser_up 0"), "{metrics}");
    // Stored sessions are served while the browser is away.
    assert_eq!(
        status_of(format!("{base}/api/sessions/event/{event}")).await,
        200
    );

    let restarted = Instant::now();
    chrome.launch(port).await;
    let back = eventually("the reconnect", Duration::from_secs(30), || async {
        sup.current().filter(|b| b.generation > first.generation)
    })
    .await;
    println!("reconnected {:?} after the restart", restarted.elapsed());
    assert_eq!(back.version.full, first.version.full);
    // And it warms again, in the new browser.
    assert_eq!(
        status_of(format!("POST {base}/api/sessions/event/{event}")).await,
        201
    );
    d.shutdown().await;
    assert_eq!(contexts_in(&chrome).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_share_the_contexts_and_the_survivor_takes_the_work() {
    let site = Site::start().await;
    let mut a = RemoteChrome::start().await;
    let b = RemoteChrome::start().await;
    let dir = tempfile::tempdir().unwrap();
    // On another host name (its own warm slots), dwelling long: its contexts stay open.
    let mut slow = site.target("slow", 4);
    slow.event_url = slow.event_url.map(|u| u.replace("127.0.0.1", "localhost"));
    slow.warmup = Duration::from_secs(60);
    // One slot beyond the pool: the extra warm below never waits for the first four.
    slow.max_concurrent_warms = 5;
    let slow_event = slow.events[0].clone();
    let mut config = fixture::config(dir.path(), vec![site.target("demo", 2), slow]);
    config.browser.endpoints = vec![
        Endpoint::new(format!("http://127.0.0.1:{}", a.port)),
        Endpoint::new(format!("http://127.0.0.1:{}", b.port)),
    ];
    let (d, base) = fixture::start(config).await;
    let sup = d.pool.warmer().supervisor().clone();
    eventually(
        "both browsers connected",
        Duration::from_secs(30),
        || async { (sup.browsers().len() == 2).then_some(()) },
    )
    .await;
    // The slow target's warms hold their contexts: they are spread over both browsers. Its
    // first four may all have started before the second browser connected; one more warm,
    // started now, goes to the browser with the fewest contexts, so both hold one either way.
    let extra = tokio::spawn(status_of(format!(
        "POST {base}/api/sessions/event/{slow_event}?target=slow"
    )));
    eventually(
        "contexts in both browsers",
        Duration::from_secs(30),
        || async { (contexts_in(&a).await >= 1 && contexts_in(&b).await >= 1).then_some(()) },
    )
    .await;
    fixture::wait_ready(&d, 2, Duration::from_secs(60)).await;

    let killed = Instant::now();
    a.kill9();
    eventually("the loss of one", Duration::from_secs(10), || async {
        (sup.browsers().len() == 1).then_some(())
    })
    .await;
    println!("one of two lost, noticed after {:?}", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(5));
    assert!(sup.current().is_some(), "the other one stays up");
    // New warms go to the survivor.
    let event = an_event_with_a_session(&d);
    assert_eq!(
        status_of(format!(
            "POST {base}/api/sessions/event/{event}?target=demo"
        ))
        .await,
        201
    );
    let mut only = sup.browsers();
    assert_eq!(only.len(), 1);
    let survivor = only.pop().unwrap();
    assert!(
        survivor.endpoint.unwrap().contains(&b.port.to_string()),
        "the survivor is b"
    );
    extra.abort();
    d.shutdown().await;
    assert_eq!(contexts_in(&b).await, 0);
}
