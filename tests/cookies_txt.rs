//! `cookies.txt` exports read by the clients people use: real curl (`-b`), real wget
//! (`--load-cookies`) and Python's stdlib `http.cookiejar.MozillaCookieJar` with requests. Each
//! must get 200 from the demo site's protected API (HttpOnly `visitor` + JS-set `challenge`
//! bound to the User-Agent) and from its login-protected pages (HttpOnly *session* cookie
//! `sid`). Sessions are earned by the real binary with real Chromium, exported by
//! `warmer sessions export`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's python3 (scripts/setup installs python3-requests for it).
const PYTHON: &str = "/usr/bin/python3";

fn warmer(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_warmer"));
    c.current_dir(dir)
        .env_remove("WARMER_CONFIG")
        .env_remove("WARMER_KEY")
        .env_remove("RUST_LOG");
    c
}

/// Runs `cmd`, failing the test (with stderr) unless it succeeds; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails loudly when a client the test needs is missing (scripts/setup installs them all).
fn require_tools() {
    for (tool, args) in [
        ("curl", vec!["--version"]),
        ("wget", vec!["--version"]),
        (PYTHON, vec!["-c", "import http.cookiejar, requests"]),
    ] {
        let found = Command::new(tool)
            .args(&args)
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} {args:?} failed: run scripts/setup (installs curl, wget, python3-requests)"
        );
    }
}

/// `warmer sessions export ID --format FORMAT` into `dir/ID.FORMAT`.
fn export(dir: &Path, id: &str, format: &str) -> PathBuf {
    let text = ok(warmer(dir).args(["sessions", "export", id, "--format", format]));
    let file = dir.join(format!("{id}.{format}"));
    std::fs::write(&file, text).unwrap();
    file
}

/// A client's answer: the HTTP status and the body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: String,
}

/// `curl -b FILE` with the session's User-Agent; redirects are not followed.
fn curl(cookies: &Path, ua: &str, url: &str) -> Answer {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}", "-b"])
        .arg(cookies)
        .args(["-A", ua, url])
        .output()
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    Answer {
        status: code.trim().parse().unwrap(),
        body: body.to_string(),
    }
}

/// `wget --load-cookies FILE` with the session's User-Agent; redirects are not followed.
fn wget(cookies: &Path, ua: &str, url: &str) -> Answer {
    let out = Command::new("wget")
        .args(["-q", "-S", "-O", "-", "--timeout=20", "--tries=1"])
        .args(["--max-redirect=0", "--content-on-error", "--load-cookies"])
        .arg(cookies)
        .args(["-U", ua, url])
        .output()
        .expect("wget runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // -S prints the response headers on stderr: "  HTTP/1.1 200 OK".
    let status = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("wget printed no status: {stderr}"));
    Answer {
        status,
        body: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Python's documented way: `MozillaCookieJar().load(FILE, ignore_discard=True)` (session
/// cookies are "discard" cookies), then requests with that jar; redirects are not followed.
fn python(cookies: &Path, ua: &str, url: &str) -> Answer {
    const SCRIPT: &str = r#"
import http.cookiejar, sys, requests
path, url, ua = sys.argv[1:4]
jar = http.cookiejar.MozillaCookieJar()
jar.load(path, ignore_discard=True)
r = requests.get(url, cookies=jar, headers={"User-Agent": ua}, allow_redirects=False, timeout=20)
sys.stdout.write("%d\n%s" % (r.status_code, r.text))
"#;
    let out = Command::new(PYTHON)
        .args(["-c", SCRIPT])
        .arg(cookies)
        .args([url, ua])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (code, body) = text.split_once('\n').unwrap();
    Answer {
        status: code.parse().unwrap(),
        body: body.to_string(),
    }
}

#[test]
fn curl_wget_and_python_cookiejar_get_200_with_exported_cookies() {
    require_tools();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let site_stop = tokio_util::sync::CancellationToken::new();
    let site = rt
        .block_on(session_warmer::demo::DemoSite::start(
            Default::default(),
            0,
            site_stop.clone(),
        ))
        .unwrap();
    let base = site.base_url();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[store]\npath = 'store'\n\
         [[targets]]\nname = 'demo'\nevent_url = '{}'\nevents = ['1001']\nwarmup = '500ms'\n\
         [[targets]]\nname = 'portal'\naccounts_dir = 'accounts'\n[targets.login]\nurl = '{base}/login'\n\
         steps = [{{fill = '#username', value = '{{username}}'}}, {{fill = '#password', value = '{{password}}'}}, {{click = 'button[type=submit]'}}, {{wait_for_url = '/account'}}]\n\
         check = {{url = '{base}/account', selector = '#account'}}\n",
        site.event_url_template()
    );
    std::fs::write(dir.path().join("warmer.toml"), &toml).unwrap();

    // An event session: HttpOnly `visitor` and the JS-set `challenge`, bound to the UA.
    let warmed: serde_json::Value = serde_json::from_str(&ok(
        warmer(dir.path()).args(["warm", "--target", "demo", "--event", "1001", "--json"])
    ))
    .unwrap();
    let event_id = warmed["id"].as_str().unwrap().to_string();
    let event_ua = warmed["fingerprint"]["user_agent"]
        .as_str()
        .unwrap()
        .to_string();

    // A login session: its `sid` is an HttpOnly session cookie (no expiry).
    let mut add = warmer(dir.path())
        .args([
            "accounts",
            "add",
            "alice",
            "--target",
            "portal",
            "--username",
            "alice",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin
        .take()
        .unwrap()
        .write_all(b"wonderland\n")
        .unwrap();
    assert!(add.wait().unwrap().success());
    ok(warmer(dir.path()).args(["login", "--account", "alice", "--target", "portal"]));
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&ok(warmer(dir.path()).args(["sessions", "list", "--json"]))).unwrap();
    let login = listed
        .iter()
        .find(|s| s["target"] == "portal")
        .expect("the login session is stored");
    let login_id = login["session_id"].as_str().unwrap().to_string();
    let login_ua = login["user_agent"].as_str().unwrap().to_string();
    let sid = login["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "sid")
        .expect("sid captured");
    assert_eq!(sid["http_only"], true, "{sid}");
    assert!(
        sid["expires"].is_null() || sid["expires"].as_f64().unwrap() <= 0.0,
        "sid is a session cookie: {sid}"
    );

    let event_api = format!("{base}/api/event/1001");
    let me = format!("{base}/api/me");
    let account = format!("{base}/account");
    let event_txt = export(dir.path(), &event_id, "cookies-txt");
    let event_wget = export(dir.path(), &event_id, "cookies-txt-wget");
    let login_txt = export(dir.path(), &login_id, "cookies-txt");
    let login_wget = export(dir.path(), &login_id, "cookies-txt-wget");

    type Client = fn(&Path, &str, &str) -> Answer;
    let clients: [(&str, Client, &Path, &Path); 3] = [
        ("curl -b", curl, &event_txt, &login_txt),
        ("wget --load-cookies", wget, &event_wget, &login_wget),
        (
            "python MozillaCookieJar + requests",
            python,
            &event_txt,
            &login_txt,
        ),
    ];
    for (name, client, event_file, login_file) in clients {
        let a = client(event_file, &event_ua, &event_api);
        assert_eq!(a.status, 200, "{name} {event_api}: {a:?}");
        assert!(a.body.contains("\"event\":\"1001\""), "{name}: {a:?}");
        let a = client(login_file, &login_ua, &me);
        assert_eq!(a.status, 200, "{name} {me}: {a:?}");
        assert!(a.body.contains("alice"), "{name}: {a:?}");
        let a = client(login_file, &login_ua, &account);
        assert_eq!(
            a.status, 200,
            "{name} {account} (signed in, no redirect): {a:?}"
        );
    }
    // Without the cookies the same requests are refused: the 200s above are the exports' doing.
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "# Netscape HTTP Cookie File\n").unwrap();
    assert_eq!(curl(&empty, &event_ua, &event_api).status, 403);
    assert_eq!(curl(&empty, &login_ua, &me).status, 401);
    assert_eq!(python(&empty, &login_ua, &me).status, 401);
    assert_eq!(wget(&empty, &login_ua, &me).status, 401);
    site_stop.cancel();
}
