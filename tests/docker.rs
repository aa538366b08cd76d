//! Checks of the container setup without a Docker engine: `docker-compose.yml`, `Dockerfile`,
//! `.dockerignore`, `deploy/warmer.toml` and the example scraper agree with each other, with the
//! config parser and with the API contract (DESIGN.md and the OpenAPI document); Debian's
//! `docker-compose config` accepts the compose file (the test fails when it is not installed).
//!
//! The compose setup needs no outside target: its `demo-site` service runs `warmer demo-site`
//! and the warmer and the scraper point at it. Two tests run the real parts: the scraper against
//! a mock warmer (what exactly it sends), and the whole pipeline on loopback — `warmer
//! demo-site`, a daemon on `deploy/warmer.toml` (service names and container paths replaced by
//! local ones) with real Chromium, and the scraper with the compose file's environment.
//!
//! The scale-out file `deploy/compose.scale.yml` (at the end) is checked the same way, on what
//! `docker-compose config` resolves: Redis with appendonly, fsync every second, a healthcheck
//! and no way in but the internal network; two warmers on `deploy/warmer.scale.toml` (which
//! `Config::load` accepts) with the shared store key as a secret where the config reads it;
//! two Debian Chromium containers (`deploy/chromium/`) whose DevTools port the config's
//! `browser.endpoints` name and nothing publishes.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use session_warmer::config::Config;

// ---------------------------------------------------------------------------------------------
// The contract (DESIGN.md, "HTTP API"): the two calls a scraper makes.

/// `GET /api/sessions/event/:eventId` — a ready session for that event.
const TAKE: (&str, &str) = ("GET", "/api/sessions/event/:eventId");
/// `POST /api/sessions/:id/usage` — `{success, status?}`: the scraper's report.
const USAGE: (&str, &str) = ("POST", "/api/sessions/:id/usage");

const API_PORT: u16 = 3000;
const CONFIG_IN_CONTAINER: &str = "/etc/warmer/warmer.toml";
const SECRET: &str = "warmer_token";
/// The demo site's compose service and the port `warmer demo-site --listen` gets there.
const DEMO_SERVICE: &str = "demo-site";
const DEMO_PORT: u16 = 8080;

// ---------------------------------------------------------------------------------------------
// Helpers.

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// YAML -> JSON, so the compose file can be walked with `serde_json` indexing.
fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(s.clone()), Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        other => panic!("unsupported YAML key {other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        other => panic!("unsupported YAML node {other:?}"),
    }
}

fn compose() -> Value {
    let docs = yaml_rust2::YamlLoader::load_from_str(&read("docker-compose.yml"))
        .expect("docker-compose.yml is valid YAML");
    assert_eq!(docs.len(), 1, "docker-compose.yml holds one document");
    yaml_to_json(&docs[0])
}

fn service(name: &str) -> Value {
    let c = compose();
    let s = &c["services"][name];
    assert!(s.is_object(), "docker-compose.yml has no service {name:?}");
    s.clone()
}

fn deploy_config() -> Config {
    Config::load(&root().join("deploy/warmer.toml")).expect("deploy/warmer.toml loads")
}

#[derive(Debug, PartialEq)]
struct Mount {
    source: String,
    target: String,
    read_only: bool,
}

/// A service's volumes, short (`src:dst[:ro]`) or long syntax.
fn mounts(svc: &Value) -> Vec<Mount> {
    svc["volumes"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|v| match v {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                assert!(parts.len() >= 2, "volume {s:?} has no target");
                Mount {
                    source: parts[0].to_string(),
                    target: parts[1].to_string(),
                    read_only: parts
                        .get(2)
                        .is_some_and(|m| m.split(',').any(|o| o == "ro")),
                }
            }
            Value::Object(o) => Mount {
                source: o["source"].as_str().unwrap_or_default().to_string(),
                target: o["target"].as_str().expect("volume target").to_string(),
                read_only: o.get("read_only").and_then(Value::as_bool).unwrap_or(false),
            },
            other => panic!("unsupported volume {other}"),
        })
        .collect()
}

/// Secret name -> path inside the container (`/run/secrets/<target or name>`).
fn secrets(svc: &Value) -> BTreeMap<String, String> {
    svc["secrets"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|s| match s {
            Value::String(n) => (n.clone(), format!("/run/secrets/{n}")),
            Value::Object(o) => {
                let name = o["source"].as_str().expect("secret source").to_string();
                let target = o.get("target").and_then(Value::as_str).unwrap_or(&name);
                let path = if target.starts_with('/') {
                    target.to_string()
                } else {
                    format!("/run/secrets/{target}")
                };
                (name, path)
            }
            other => panic!("unsupported secret {other}"),
        })
        .collect()
}

/// A service's environment, list (`K=V`) or map syntax.
fn environment(svc: &Value) -> BTreeMap<String, String> {
    match &svc["environment"] {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The healthcheck command as one string (`CMD`/`CMD-SHELL` list or string form).
fn healthcheck_command(svc: &Value) -> String {
    match &svc["healthcheck"]["test"] {
        Value::String(s) => s.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .filter(|w| !matches!(*w, "CMD" | "CMD-SHELL"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// One Dockerfile instruction, continuations joined, comments dropped.
#[derive(Debug, Clone)]
struct Instr {
    op: String,
    args: String,
}

fn dockerfile() -> Vec<Instr> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, args) = cur
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((&cur, ""));
        out.push(Instr {
            op: op.to_ascii_uppercase(),
            args: args.split_whitespace().collect::<Vec<_>>().join(" "),
        });
        cur.clear();
    }
    assert!(
        cur.trim().is_empty(),
        "Dockerfile ends inside a continuation"
    );
    out
}

/// Instructions of each stage, `FROM` first.
fn stages() -> Vec<Vec<Instr>> {
    let mut stages: Vec<Vec<Instr>> = Vec::new();
    for i in dockerfile() {
        if i.op == "FROM" {
            stages.push(vec![i]);
        } else if let Some(s) = stages.last_mut() {
            s.push(i);
        } else {
            assert_eq!(i.op, "ARG", "only ARG may precede the first FROM");
        }
    }
    assert!(!stages.is_empty(), "Dockerfile has no FROM");
    stages
}

fn exec_form(i: &Instr) -> Vec<String> {
    serde_json::from_str(&i.args)
        .unwrap_or_else(|e| panic!("{} {} is not exec (JSON) form: {e}", i.op, i.args))
}

/// Every property of an object schema: its own and those of each `allOf` part (a struct with
/// `#[serde(flatten)]` fields is documented as `allOf` of its parts), `$ref`s followed.
fn all_properties(doc: &Value, schema: &Value) -> Map<String, Value> {
    let schema = resolve(doc, schema);
    let mut out = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for part in schema["allOf"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        out.extend(all_properties(doc, part));
    }
    out
}

/// Follows a local `$ref` in the OpenAPI document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {r}")),
            )
        }
        None => v,
    }
}

/// `/api/sessions/:id/usage` and `/api/sessions/{id}/usage` -> `/api/sessions/{}/usage`.
fn normalise_path(p: &str) -> String {
    p.split('/')
        .map(|seg| {
            if seg.starts_with(':') || (seg.starts_with('{') && seg.ends_with('}')) || seg == "%s" {
                "{}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The OpenAPI path template matching `contract_path`, e.g. `/api/sessions/event/{eventId}`.
fn openapi_path(doc: &Value, contract_path: &str) -> String {
    let want = normalise_path(contract_path);
    doc["paths"]
        .as_object()
        .expect("OpenAPI paths")
        .keys()
        .find(|k| normalise_path(k) == want)
        .unwrap_or_else(|| panic!("OpenAPI document has no path for {contract_path}"))
        .clone()
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

#[test]
fn compose_has_the_warmer_and_the_scraper() {
    let c = compose();
    let names: BTreeSet<&str> = c["services"]
        .as_object()
        .expect("services")
        .keys()
        .map(String::as_str)
        .collect();
    assert!(
        names.contains("warmer") && names.contains("scraper"),
        "{names:?}"
    );
    let w = service("warmer");
    assert_eq!(w["build"], json!("."), "the warmer is built from this repo");
    assert_eq!(w["restart"], json!("unless-stopped"));
    assert_eq!(w["stop_grace_period"], json!("15s"));
    // tini is the image's entrypoint: a second init would be redundant.
    assert_ne!(w["init"], json!(true), "tini already runs as PID 1");
}

#[test]
fn warmer_keeps_its_store_on_a_named_volume() {
    let c = compose();
    let w = service("warmer");
    let m = mounts(&w);
    let data = m
        .iter()
        .find(|m| m.target == "/data")
        .unwrap_or_else(|| panic!("no volume at /data: {m:?}"));
    assert_eq!(data.source, "warmer-data", "/data is the named volume");
    assert!(!data.read_only, "/data must be writable");
    assert!(
        c["volumes"]
            .as_object()
            .is_some_and(|v| v.contains_key("warmer-data")),
        "warmer-data is declared under top-level volumes"
    );
    // The store configured for the container lives on that volume.
    let store = deploy_config().store.path;
    assert!(
        store.starts_with("/data"),
        "store.path {} is not on the /data volume",
        store.display()
    );
}

#[test]
fn warmer_mounts_its_config_and_events_read_only() {
    let w = service("warmer");
    let m = mounts(&w);
    let cfg = m
        .iter()
        .find(|m| m.target == CONFIG_IN_CONTAINER)
        .unwrap_or_else(|| panic!("no mount at {CONFIG_IN_CONTAINER}: {m:?}"));
    assert_eq!(cfg.source, "./deploy/warmer.toml");
    assert!(cfg.read_only, "the config is mounted :ro");
    // Every events_file the config names is mounted from a file in the repo.
    for t in &deploy_config().targets {
        if let Some(f) = &t.events_file {
            let f = f.to_str().unwrap();
            let mount = m
                .iter()
                .find(|m| m.target == f)
                .unwrap_or_else(|| panic!("targets {:?}: events_file {f} is not mounted", t.name));
            assert!(mount.read_only, "{f} is mounted :ro");
            let local = root().join(mount.source.trim_start_matches("./"));
            assert!(local.is_file(), "{} is missing", local.display());
        }
    }
    let env = environment(&w);
    if let Some(c) = env.get("WARMER_CONFIG") {
        assert_eq!(c, CONFIG_IN_CONTAINER);
    }
}

#[test]
fn the_token_is_a_compose_secret_matching_the_config() {
    let c = compose();
    let w = service("warmer");
    let s = secrets(&w);
    let path = s
        .get(SECRET)
        .unwrap_or_else(|| panic!("warmer does not get the {SECRET} secret: {s:?}"));
    let cfg = deploy_config();
    assert_eq!(
        cfg.server.token_file.as_deref(),
        Some(Path::new(path)),
        "server.token_file is where compose mounts the secret"
    );
    let file = c["secrets"][SECRET]["file"]
        .as_str()
        .unwrap_or_else(|| panic!("top-level secrets.{SECRET}.file"));
    assert_eq!(file, "./deploy/warmer_token.txt");
    // The token file is neither committed nor sent to the Docker daemon.
    let gitignore = read("deploy/.gitignore");
    assert!(
        gitignore.lines().any(|l| l.trim() == "warmer_token.txt"),
        "deploy/.gitignore must ignore warmer_token.txt"
    );
    let dockerignore = read(".dockerignore");
    assert!(
        dockerignore
            .lines()
            .any(|l| l.trim() == "deploy/warmer_token.txt"),
        ".dockerignore must exclude deploy/warmer_token.txt"
    );
    // Its generation is documented where the user starts.
    assert!(read("docker-compose.yml").contains("openssl rand -hex 32 > deploy/warmer_token.txt"));
}

#[test]
fn warmer_healthcheck_hits_healthz_on_the_configured_port() {
    let w = service("warmer");
    let cmd = healthcheck_command(&w);
    let url = format!("http://127.0.0.1:{API_PORT}/healthz");
    assert!(
        cmd.contains(&url),
        "healthcheck {cmd:?} does not call {url}"
    );
    assert!(
        cmd.contains("curl") && cmd.contains("-f"),
        "{cmd:?} must fail on HTTP errors"
    );
    assert_eq!(deploy_config().server.listen.port(), API_PORT);
}

#[test]
fn scraper_waits_for_a_healthy_warmer_and_shares_the_token() {
    let s = service("scraper");
    assert_eq!(s["image"], json!("python:3.12-slim"));
    assert_eq!(
        s["depends_on"]["warmer"]["condition"],
        json!("service_healthy"),
        "the scraper starts once the warmer is healthy"
    );
    let cmd = match &s["command"] {
        Value::String(c) => c.clone(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        other => panic!("scraper command {other}"),
    };
    assert_eq!(cmd, "python /app/scraper.py");
    let m = mounts(&s);
    assert!(
        m.contains(&Mount {
            source: "./deploy/scraper".into(),
            target: "/app".into(),
            read_only: true,
        }),
        "{m:?}"
    );
    assert!(root().join("deploy/scraper/scraper.py").is_file());
    let env = environment(&s);
    assert_eq!(
        env.get("WARMER_URL").map(String::as_str),
        Some(format!("http://warmer:{API_PORT}").as_str()),
        "the scraper reaches the warmer by its service name"
    );
    let event = env.get("EVENT_ID").expect("EVENT_ID");
    // `${EVENT_ID:-123}`: the default is an event the warmer is seeded with.
    let default_event = event
        .strip_prefix("${EVENT_ID:-")
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(event);
    assert!(
        read_events().iter().any(|e| e == default_event),
        "EVENT_ID {default_event:?} is not in deploy/events.txt"
    );
    assert!(env.contains_key("TARGET_URL"), "{env:?}");
    let sec = secrets(&s);
    assert_eq!(
        sec.get(SECRET).map(String::as_str),
        Some("/run/secrets/warmer_token"),
        "{sec:?}"
    );
    // The scraper reads the token where compose puts it.
    let py = read("deploy/scraper/scraper.py");
    let token_path = env
        .get("WARMER_TOKEN_FILE")
        .cloned()
        .unwrap_or_else(|| "/run/secrets/warmer_token".into());
    assert_eq!(token_path, "/run/secrets/warmer_token");
    assert!(py.contains("/run/secrets/warmer_token"));
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore

#[test]
fn dockerfile_builds_release_and_runs_on_bookworm_slim() {
    let st = stages();
    assert!(st.len() >= 2, "multi-stage: builder + runtime");
    let builder = &st[0];
    assert!(
        builder[0].args.starts_with("rust:1") && builder[0].args.contains("-bookworm"),
        "builder {:?}",
        builder[0].args
    );
    assert!(
        builder
            .iter()
            .any(|i| i.op == "RUN" && i.args.contains("cargo build --release --locked")),
        "the builder runs cargo build --release --locked"
    );
    let runtime = st.last().unwrap();
    assert!(
        runtime[0].args.starts_with("debian:bookworm-slim"),
        "runtime {:?}",
        runtime[0].args
    );
    // Same Debian release in both stages: the binary links against bookworm's glibc.
    let copy_bin = runtime
        .iter()
        .find(|i| i.op == "COPY" && i.args.starts_with("--from="))
        .expect("the runtime copies the binary from the builder");
    let dest = copy_bin.args.split_whitespace().last().unwrap();
    assert!(
        dest == "/usr/local/bin/warmer" || dest == "/usr/bin/warmer",
        "warmer must land on PATH, not {dest}"
    );
}

#[test]
fn dockerfile_installs_debian_chromium_and_never_downloads_a_browser() {
    let st = stages();
    let runtime = st.last().unwrap();
    let install = runtime
        .iter()
        .find(|i| i.op == "RUN" && i.args.contains("apt-get install"))
        .expect("the runtime installs packages with apt-get");
    let words: BTreeSet<&str> = install.args.split_whitespace().collect();
    for pkg in ["chromium", "ca-certificates", "tini", "curl"] {
        assert!(
            words.contains(pkg),
            "apt-get install lacks {pkg}: {}",
            install.args
        );
    }
    assert!(words.contains("--no-install-recommends"));
    assert!(
        install.args.contains("rm -rf /var/lib/apt/lists"),
        "apt lists are cleaned in the same layer"
    );

    let text = read("Dockerfile").to_ascii_lowercase();
    for banned in [
        "playwright install",
        "npx playwright",
        "puppeteer",
        "chrome-for-testing",
        "storage.googleapis.com",
        "commondatastorage",
        "chromium-browser-snapshots",
        "dl.google.com",
        "google-chrome",
    ] {
        assert!(!text.contains(banned), "Dockerfile mentions {banned:?}");
    }
    // Nothing is fetched by URL while building: packages come from apt's own sources.
    for i in dockerfile() {
        if i.op == "RUN" || i.op == "ADD" {
            assert!(
                !i.args.contains("http://") && !i.args.contains("https://"),
                "{} fetches a URL: {}",
                i.op,
                i.args
            );
        }
    }
}

#[test]
fn dockerfile_runs_as_non_root_under_tini_with_a_healthcheck() {
    let st = stages();
    let runtime = st.last().unwrap();
    let find = |op: &str| runtime.iter().rev().find(|i| i.op == op);

    let user = find("USER").expect("the runtime sets a USER");
    let name = user.args.split(':').next().unwrap();
    assert!(!matches!(name, "root" | "0"), "USER {name} is root");
    let creates = runtime.iter().any(|i| {
        i.op == "RUN"
            && i.args.contains("useradd")
            && i.args.contains("--uid 10001")
            && i.args.contains(name)
    });
    assert!(creates, "user {name} (uid 10001) is created with useradd");
    assert!(
        runtime.iter().any(|i| i.op == "RUN"
            && i.args.contains("/data")
            && (i.args.contains(&format!("-o {name}")) || i.args.contains("chown"))),
        "/data is owned by {name}"
    );

    let entry = exec_form(find("ENTRYPOINT").expect("ENTRYPOINT"));
    assert_eq!(entry, ["/usr/bin/tini", "--", "warmer"]);
    let cmd = exec_form(find("CMD").expect("CMD"));
    assert_eq!(cmd, ["serve", "--config", CONFIG_IN_CONTAINER]);

    let hc = find("HEALTHCHECK").expect("HEALTHCHECK");
    assert!(
        hc.args
            .contains(&format!("curl -fsS http://127.0.0.1:{API_PORT}/healthz")),
        "{}",
        hc.args
    );
    let expose = find("EXPOSE").expect("EXPOSE");
    assert!(expose
        .args
        .split_whitespace()
        .any(|p| p == API_PORT.to_string()));
    let env = runtime
        .iter()
        .filter(|i| i.op == "ENV")
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        env.contains(&format!("WARMER_CONFIG={CONFIG_IN_CONTAINER}")),
        "{env}"
    );
}

/// Patterns of `.dockerignore` (comments and blanks dropped, leading/trailing `/` trimmed).
fn dockerignore() -> Vec<String> {
    read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_string())
        .collect()
}

fn ignored(path: &str, patterns: &[String]) -> bool {
    let path = path.trim_start_matches("./").trim_matches('/');
    patterns
        .iter()
        .filter(|p| !p.contains('*') && !p.starts_with('!'))
        .any(|p| path == p || path.starts_with(&format!("{p}/")))
}

#[test]
fn dockerignore_keeps_the_context_small_and_every_copy_source_present() {
    let patterns = dockerignore();
    for must in ["target", "data", ".git", "bench/node_modules"] {
        assert!(
            ignored(must, &patterns),
            ".dockerignore does not exclude {must}: {patterns:?}"
        );
    }
    for i in dockerfile() {
        if i.op != "COPY" || i.args.starts_with("--from=") {
            continue;
        }
        let args: Vec<&str> = i
            .args
            .split_whitespace()
            .filter(|a| !a.starts_with("--"))
            .collect();
        for src in &args[..args.len() - 1] {
            assert!(
                root().join(src).exists(),
                "COPY source {src} does not exist"
            );
            assert!(
                !ignored(src, &patterns),
                "COPY source {src} is excluded by .dockerignore"
            );
        }
    }
}

/// Every secret file a compose file mounts (top-level `secrets.*.file`, relative to that
/// compose file's folder) stays out of the build context.
#[test]
fn dockerignore_excludes_every_secret_file_the_compose_files_mount() {
    let patterns = dockerignore();
    let mut checked = 0;
    for (file, dir) in [("docker-compose.yml", ""), (SCALE_COMPOSE, "deploy/")] {
        let docs = yaml_rust2::YamlLoader::load_from_str(&read(file)).expect("valid YAML");
        let c = yaml_to_json(&docs[0]);
        let secrets = c["secrets"].as_object().expect("top-level secrets");
        for (name, s) in secrets {
            let path = s["file"].as_str().expect("a file secret");
            let path = format!("{dir}{}", path.trim_start_matches("./"));
            assert!(
                ignored(&path, &patterns),
                "{file}: secret {name} ({path}) is not excluded by .dockerignore"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "the token and the store key: {checked}");
}

// ---------------------------------------------------------------------------------------------
// deploy/warmer.toml

#[test]
fn deploy_config_loads_and_listens_beyond_loopback_with_a_token() {
    let cfg = deploy_config();
    assert!(
        !cfg.server.listen.ip().is_loopback(),
        "listen {} must be reachable from the scraper container",
        cfg.server.listen
    );
    assert!(
        cfg.server.token_file.is_some(),
        "a non-loopback listen requires a token"
    );
    assert_eq!(cfg.browser.max_contexts, 10);
    // The target is the compose file's demo site, by its service name.
    let t = cfg.target("demo").expect("target demo");
    assert_eq!(
        t.event_page("1001").unwrap(),
        format!("http://{DEMO_SERVICE}:{DEMO_PORT}/event/1001")
    );
    assert_eq!(
        t.events_file.as_deref(),
        Some(Path::new("/etc/warmer/events.txt"))
    );
    assert_eq!(t.pool_size, 3);
    let v = t.validate.as_ref().expect("targets.validate");
    assert_eq!(
        v.url,
        format!("http://{DEMO_SERVICE}:{DEMO_PORT}/api/event/{{event}}")
    );
    assert_eq!(v.expect_status, 200);
    assert_eq!(v.require_cookies, ["visitor", "challenge"]);

    // Its events are the demo site's.
    let ids = read_events();
    assert!(ids.len() >= 2, "deploy/events.txt has a few ids: {ids:?}");
    let demo = session_warmer::demo::demo_events();
    for id in &ids {
        assert!(
            demo.contains(id),
            "event {id} is not one of the demo site's: {demo:?}"
        );
    }
}

/// Event ids of `deploy/events.txt` (blank lines and `#` comments skipped, as the daemon does).
fn read_events() -> Vec<String> {
    read("deploy/events.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_image_default_config_is_the_deploy_config() {
    // The image bakes deploy/warmer.toml in, so `docker run` works without compose too.
    let copies: Vec<String> = dockerfile()
        .into_iter()
        .filter(|i| i.op == "COPY" && !i.args.starts_with("--from="))
        .map(|i| i.args)
        .collect();
    assert!(
        copies
            .iter()
            .any(|c| c == &format!("deploy/warmer.toml {CONFIG_IN_CONTAINER}")),
        "{copies:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The scraper against the API contract.

/// A call found in scraper.py: method and path template.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    method: String,
    path: String,
}

/// The `/api/...` string literals of scraper.py, each with the method of the `_request(...)`
/// that follows it.
fn scraper_calls(py: &str) -> Vec<Call> {
    let mut calls = Vec::new();
    let mut rest = py;
    while let Some(at) = rest.find("\"/api/") {
        let lit = &rest[at + 1..];
        let end = lit.find('"').expect("closing quote");
        let path = lit[..end].split('?').next().unwrap().to_string();
        let after = &lit[end..];
        let method = after
            .find("_request(\"")
            .map(|m| {
                let m = &after[m + "_request(\"".len()..];
                m[..m.find('"').unwrap()].to_string()
            })
            .unwrap_or_else(|| panic!("no _request(...) after {path}"));
        calls.push(Call { method, path });
        rest = &lit[end..];
    }
    calls.sort();
    calls
}

/// Keys of the usage payload: `payload = {"k": ...}` and `payload["k"] = ...`.
fn usage_keys(py: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let start = py
        .find("payload = {")
        .expect("payload = {...} in scraper.py");
    let body = &py[start + "payload = {".len()..];
    let body = &body[..body.find('}').unwrap()];
    for part in body.split(',') {
        if let Some(k) = part
            .trim()
            .strip_prefix('"')
            .and_then(|p| p.split('"').next())
        {
            keys.insert(k.to_string());
        }
    }
    let mut rest = py;
    while let Some(at) = rest.find("payload[\"") {
        let k = &rest[at + "payload[\"".len()..];
        keys.insert(k[..k.find('"').unwrap()].to_string());
        rest = &k[1..];
    }
    keys
}

/// Fields the scraper reads from the session: `session["k"]` and `session.get("k"`.
fn session_fields(py: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for pat in ["session[\"", "session.get(\""] {
        let mut rest = py;
        while let Some(at) = rest.find(pat) {
            let k = &rest[at + pat.len()..];
            out.insert(k[..k.find('"').unwrap()].to_string());
            rest = &k[1..];
        }
    }
    out
}

#[test]
fn scraper_calls_exactly_the_design_paths() {
    let py = read("deploy/scraper/scraper.py");
    let calls = scraper_calls(&py);
    let mut want = vec![
        Call {
            method: TAKE.0.into(),
            path: normalise_path(TAKE.1),
        },
        Call {
            method: USAGE.0.into(),
            path: normalise_path(USAGE.1),
        },
    ];
    want.sort();
    let got: Vec<Call> = calls
        .into_iter()
        .map(|c| Call {
            method: c.method,
            path: normalise_path(&c.path),
        })
        .collect();
    assert_eq!(got, want, "scraper.py calls");

    assert!(
        py.contains("\"Authorization\", \"Bearer \""),
        "the scraper sends Authorization: Bearer <token>"
    );
    assert!(py.contains("\"lease\""), "the scraper asks for a lease");
    assert!(
        py.contains("Retry-After"),
        "the scraper honours Retry-After"
    );
    assert!(
        py.contains("503"),
        "the scraper handles 503 (no session yet)"
    );
    assert_eq!(
        usage_keys(&py),
        BTreeSet::from(["success".to_string(), "status".to_string()]),
        "usage body keys"
    );
    let fields = session_fields(&py);
    for f in ["session_id", "headers", "proxy"] {
        assert!(
            fields.contains(f),
            "the scraper does not use {f}: {fields:?}"
        );
    }
    // Stdlib only: the python:3.12-slim image has nothing else.
    for line in py.lines().map(str::trim) {
        if let Some(m) = line
            .strip_prefix("import ")
            .or_else(|| line.strip_prefix("from "))
        {
            let module = m.split(['.', ' ']).next().unwrap();
            assert!(
                [
                    "email",
                    "json",
                    "os",
                    "random",
                    "signal",
                    "sys",
                    "threading",
                    "time",
                    "urllib"
                ]
                .contains(&module),
                "scraper.py imports {module}: stdlib only"
            );
        }
    }
}

/// The README (the contract users read; tests read only the repository) shows the two calls a
/// scraper makes, with their methods, as the OpenAPI document has them.
#[test]
fn the_readme_shows_the_scraper_calls() {
    let readme = read("README.md");
    let take = TAKE.1.replace(":eventId", "");
    let usage = USAGE.1.replace(":id", "$ID");
    assert!(
        readme
            .lines()
            .any(|l| l.starts_with("curl ") && !l.contains("-X") && l.contains(&take)),
        "README shows `curl` GET {take}"
    );
    assert!(
        readme.lines().any(|l| l.contains(&usage))
            && readme
                .lines()
                .any(|l| l.starts_with("curl -X POST")
                    && l.contains("Content-Type: application/json")),
        "README shows POST {usage} with a JSON body"
    );
    let listed = format!("`{}` GET and POST", TAKE.1);
    assert!(readme.contains(&listed), "README lists {listed}");
    assert!(
        readme.contains(&format!("`{}`", USAGE.1)),
        "README lists {}",
        USAGE.1
    );
}

#[test]
fn openapi_matches_what_the_scraper_sends_and_reads() {
    let doc = session_warmer::api::openapi_json();
    let py = read("deploy/scraper/scraper.py");

    // GET /api/sessions/event/{eventId}: lease parameter, bearer auth, 200 and 503.
    let take_path = openapi_path(&doc, TAKE.1);
    assert_eq!(take_path, "/api/sessions/event/{eventId}");
    let get = &doc["paths"][&take_path]["get"];
    assert!(get.is_object(), "{take_path} has no get");
    let params: BTreeSet<&str> = get["parameters"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| resolve(&doc, p))
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(
        params.contains("eventId") && params.contains("lease"),
        "{params:?}"
    );
    for status in ["200", "503"] {
        assert!(
            get["responses"][status].is_object(),
            "{take_path} does not document {status}"
        );
    }
    assert_requires_bearer(&doc, get, &take_path);
    let session = resolve(
        &doc,
        &get["responses"]["200"]["content"]["application/json"]["schema"],
    );
    let props = all_properties(&doc, session);
    assert!(
        !props.is_empty(),
        "session schema has no properties: {session}"
    );
    for f in session_fields(&py) {
        assert!(
            props.contains_key(&f),
            "the scraper reads {f:?}, which the session response lacks"
        );
    }

    // POST /api/sessions/{id}/usage: body {success, status}.
    let usage_path = openapi_path(&doc, USAGE.1);
    assert_eq!(usage_path, "/api/sessions/{id}/usage");
    let post = &doc["paths"][&usage_path]["post"];
    assert!(post.is_object(), "{usage_path} has no post");
    assert_requires_bearer(&doc, post, &usage_path);
    let schema = resolve(
        &doc,
        &post["requestBody"]["content"]["application/json"]["schema"],
    );
    let props: &Map<String, Value> = schema["properties"].as_object().expect("usage schema");
    assert!(
        props.contains_key("success") && props.contains_key("status"),
        "usage body: {props:?}"
    );
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains("success"), "success is required");
    let sent = usage_keys(&py);
    assert!(required.iter().all(|r| sent.contains(*r)));
    for k in &sent {
        assert!(
            props.contains_key(k),
            "the scraper sends {k:?}, unknown to the usage body"
        );
    }

    // The healthcheck carries no token: /healthz must not require one.
    let health = &doc["paths"]["/healthz"]["get"];
    assert!(health.is_object(), "/healthz is documented");
    let needs_auth = health["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|r| r.as_object().is_some_and(|o| !o.is_empty()))
    });
    assert!(!needs_auth, "/healthz must not require the token");
}

fn assert_requires_bearer(doc: &Value, op: &Value, path: &str) {
    let names: Vec<&str> = op["security"]
        .as_array()
        .or_else(|| doc["security"].as_array())
        .map(|v| v.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().map(String::as_str))
        .collect();
    assert!(
        names.iter().any(|n| {
            doc["components"]["securitySchemes"][*n]["scheme"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
        }),
        "{path} is not documented as bearer-protected: {names:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The scraper, run: against a mock warmer and a mock target (when python3 is installed).

#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Handler = dyn Fn(&Seen, usize) -> (u16, Vec<(String, String)>, String) + Send + Sync;

/// A tiny HTTP/1.1 server (one request per connection, as urllib sends `Connection: close`).
fn mock(handler: Arc<Handler>) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = serve_one(stream, &*handler, &log);
        }
    });
    (port, seen)
}

fn serve_one(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    r.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l)?;
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let seen = Seen {
        request_line: request_line.trim_end().to_string(),
        headers,
        body,
    };
    let n = {
        let mut log = log.lock().unwrap();
        log.push(seen.clone());
        log.len()
    };
    let (status, extra, body) = handler(&seen, n);
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    )?;
    for (k, v) in extra {
        write!(out, "{k}: {v}\r\n")?;
    }
    write!(out, "\r\n{body}")?;
    out.flush()
}

#[test]
fn scraper_run_against_a_mock_warmer_sends_exactly_the_contract() {
    require_python3();
    const TOKEN: &str = "tok-5ecret-4711";
    const COOKIE: &str = "visitor=c00kie-5ecret; cf=abc";
    const PROXY_PW: &str = "pr0xy-5ecret";

    // The target doubles as the HTTP proxy of the second session.
    let (target_port, target_seen) = mock(Arc::new(|s: &Seen, _| {
        // Absolute-form request line: it came through the proxy (the second session).
        if s.request_line.starts_with("GET http://") {
            (403, vec![], "{}".into())
        } else {
            (200, vec![], "{\"ok\":true}".into())
        }
    }));
    let session_headers = json!({
        "Cookie": COOKIE,
        "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0 Safari/537.36",
        "sec-ch-ua": "\"Chromium\";v=\"156\"",
        "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": "\"Linux\"",
        "Accept-Language": "en-US,en;q=0.9",
    });
    let sh = session_headers.clone();
    let (warmer_port, warmer_seen) = mock(Arc::new(move |s: &Seen, n| {
        if s.request_line.starts_with("POST ") {
            return (
                200,
                vec![],
                json!({"session_id": "x", "verdict": "keep", "reason": null, "error_score": 0.0})
                    .to_string(),
            );
        }
        match n {
            1 => (
                503,
                vec![("Retry-After".into(), "1".into())],
                json!({"error": {"code": "no_session", "message": "none ready"}}).to_string(),
            ),
            _ => {
                let (id, proxy) = if n == 2 {
                    ("s-direct", Value::Null)
                } else {
                    (
                        "s-proxied",
                        json!(format!("http://user:{PROXY_PW}@127.0.0.1:{target_port}")),
                    )
                };
                (
                    200,
                    vec![],
                    json!({
                        "session_id": id, "target": "tickets", "event": "123", "match": "event",
                        "headers": sh, "cookies": [{"name": "visitor", "value": "c00kie-5ecret"}],
                        "proxy": proxy, "fingerprint": {}, "expires_at": "2030-01-01T00:00:00Z",
                        "lease": {"expires_at": "2030-01-01T00:00:00Z", "seconds": 30}
                    })
                    .to_string(),
                )
            }
        }
    }));

    let out = std::process::Command::new("python3")
        .arg(root().join("deploy/scraper/scraper.py"))
        .env("WARMER_URL", format!("http://127.0.0.1:{warmer_port}"))
        .env("EVENT_ID", "123")
        .env("WARMER_TOKEN", TOKEN)
        .env("ITERATIONS", "3")
        .env("INTERVAL", "0.05")
        .env("LEASE", "30s")
        .env(
            "TARGET_URL",
            format!("http://127.0.0.1:{target_port}/api/event/{{event}}"),
        )
        // Proxies from the environment must not be used: the session's proxy is.
        .env("http_proxy", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env_remove("no_proxy")
        .env_remove("NO_PROXY")
        .output()
        .expect("running python3");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "scraper failed:\n{output}");
    for secret in [TOKEN, "c00kie-5ecret", PROXY_PW] {
        assert!(
            !output.contains(secret),
            "the scraper printed a secret:\n{output}"
        );
    }

    let w = warmer_seen.lock().unwrap().clone();
    let lines: Vec<&str> = w.iter().map(|s| s.request_line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "GET /api/sessions/event/123?lease=30s HTTP/1.1",
            "GET /api/sessions/event/123?lease=30s HTTP/1.1",
            "POST /api/sessions/s-direct/usage HTTP/1.1",
            "GET /api/sessions/event/123?lease=30s HTTP/1.1",
            "POST /api/sessions/s-proxied/usage HTTP/1.1",
        ],
        "{output}"
    );
    for s in &w {
        assert_eq!(
            s.header("Authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let reports: Vec<Value> = w
        .iter()
        .filter(|s| s.request_line.starts_with("POST"))
        .map(|s| {
            assert_eq!(s.header("Content-Type"), Some("application/json"));
            serde_json::from_slice(&s.body).unwrap()
        })
        .collect();
    assert_eq!(
        reports,
        [
            json!({"success": true, "status": 200}),
            json!({"success": false, "status": 403}),
        ]
    );

    // The target saw exactly the session's headers (plus what HTTP itself needs).
    let t = target_seen.lock().unwrap().clone();
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0].request_line, "GET /api/event/123 HTTP/1.1");
    assert_eq!(
        t[1].request_line,
        format!("GET http://127.0.0.1:{target_port}/api/event/123 HTTP/1.1"),
        "the second session's request goes through its proxy"
    );
    assert!(
        t[1].header("Proxy-Authorization")
            .is_some_and(|v| v.starts_with("Basic ")),
        "proxy credentials are sent to the proxy"
    );
    let want: BTreeMap<String, String> = session_headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_string()))
        .collect();
    for s in &t {
        let got: BTreeMap<String, String> = s
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "host" | "connection" | "accept-encoding" | "proxy-authorization"
                )
            })
            .collect();
        assert_eq!(got, want, "headers sent to the target");
    }
}

/// Fails loudly when python3 is missing: the scraper is run, not skipped.
fn require_python3() {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "python3 is required to run deploy/scraper/scraper.py (Debian's python3; scripts/setup \
         installs python3-requests, which brings it)"
    );
}

// ---------------------------------------------------------------------------------------------
// The demo site as a compose service: `docker compose up` needs no outside target.

/// The arguments of a service's `command` (exec form or a string split on spaces).
fn command_of(svc: &Value) -> Vec<String> {
    match &svc["command"] {
        Value::String(c) => c.split_whitespace().map(str::to_string).collect(),
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().expect("string arguments").to_string())
            .collect(),
        other => panic!("command {other}"),
    }
}

/// `host:port` of an `http://` URL template.
fn authority(url: &str) -> String {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url} is not http://"));
    rest.split('/').next().unwrap().to_string()
}

#[test]
fn compose_runs_the_demo_site_and_points_the_pipeline_at_it() {
    let d = service(DEMO_SERVICE);
    let w = service("warmer");
    // The same image as the warmer (built from this repo), running `warmer demo-site`.
    assert_eq!(d["build"], json!("."), "{d}");
    assert_eq!(d["image"], w["image"], "one image for both");
    let args = command_of(&d);
    assert_eq!(
        args,
        ["demo-site", "--listen", &format!("0.0.0.0:{DEMO_PORT}")],
        "the image's entrypoint is `tini -- warmer`; the demo site listens beyond loopback, \
         explicitly"
    );
    // The binary accepts exactly that command line.
    {
        use clap::Parser as _;
        let mut argv = vec!["warmer".to_string()];
        argv.extend(args.iter().cloned());
        session_warmer::cli::Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("warmer {}: {e}", args.join(" ")));
    }
    // Its healthcheck asks the demo site itself, on its port.
    let health = healthcheck_command(&d);
    assert!(
        health.contains(&format!("http://127.0.0.1:{DEMO_PORT}/")) && health.contains("-f"),
        "{health}"
    );
    // Published on the host's loopback only, if at all.
    for p in d["ports"].as_array().into_iter().flatten() {
        let p = p.as_str().expect("short port syntax");
        assert!(
            p.starts_with("127.0.0.1:"),
            "{p} is published beyond loopback"
        );
    }
    // The warmer waits for it, and warms on it.
    assert_eq!(
        w["depends_on"][DEMO_SERVICE]["condition"],
        json!("service_healthy")
    );
    let demo = format!("{DEMO_SERVICE}:{DEMO_PORT}");
    let cfg = deploy_config();
    assert_eq!(cfg.targets.len(), 1, "one target: the demo site");
    let t = &cfg.targets[0];
    assert_eq!(authority(t.event_url.as_deref().unwrap()), demo);
    assert!(t.event_url.as_deref().unwrap().ends_with("/event/{event}"));
    // The scraper calls the demo's protected API for one of the seeded events.
    let env = environment(&service("scraper"));
    let target_url = env.get("TARGET_URL").expect("TARGET_URL");
    assert_eq!(authority(target_url), demo);
    assert!(target_url.ends_with("/api/event/{event}"), "{target_url}");
    // No outside target anywhere in the pipeline.
    let text = read("docker-compose.yml") + &read("deploy/warmer.toml");
    assert!(
        !text.contains("https://"),
        "an outside URL in the compose setup"
    );
}

/// Debian's `docker-compose` (no engine needed for `config`).
fn docker_compose() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("docker-compose"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "docker-compose is not installed: this test checks docker-compose.yml with \
             `docker-compose config` (Debian's docker-compose package; scripts/setup installs it)"
        )
    })
}

#[test]
fn docker_compose_config_accepts_the_compose_file() {
    let bin = docker_compose();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&bin)
            .current_dir(root())
            .args(["--project-directory", ".", "-f", "docker-compose.yml"])
            .args(args)
            // The file's own defaults, not whatever the environment sets.
            .env_remove("EVENT_ID")
            .env_remove("RUST_LOG")
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .output()
            .expect("docker-compose runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "docker-compose {} failed:\n{stdout}{stderr}",
            args.join(" ")
        );
        stdout
    };
    run(&["config", "-q"]);
    let services: BTreeSet<String> = run(&["config", "--services"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        services,
        BTreeSet::from([
            DEMO_SERVICE.to_string(),
            "warmer".to_string(),
            "scraper".to_string()
        ])
    );
    // The resolved file: the defaults filled in as compose reads them.
    let resolved = run(&["config"]);
    let docs = yaml_rust2::YamlLoader::load_from_str(&resolved).expect("YAML");
    let c = yaml_to_json(&docs[0]);
    let env = &c["services"]["scraper"]["environment"];
    assert_eq!(env["EVENT_ID"], json!("1001"), "{env}");
    assert!(
        read_events().iter().any(|e| env["EVENT_ID"] == json!(e)),
        "the scraper's default event is seeded"
    );
    assert_eq!(
        env["TARGET_URL"],
        json!(format!(
            "http://{DEMO_SERVICE}:{DEMO_PORT}/api/event/{{event}}"
        ))
    );
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The compose pipeline on loopback, without an engine: `warmer demo-site` (the compose
/// service's command, on 127.0.0.1), a daemon with `deploy/warmer.toml` (its service names,
/// paths and secret pointed at local ones), and `deploy/scraper/scraper.py` with the compose
/// file's environment: the scraper's calls to the demo's protected API succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_pipeline_works_on_loopback() {
    require_python3();
    // The demo-site service's command, on loopback.
    let mut args = command_of(&service(DEMO_SERVICE));
    let listen = args.iter().position(|a| a == "--listen").unwrap() + 1;
    args[listen] = "127.0.0.1:0".into();
    let mut site = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_warmer"))
            .args(&args)
            .env_remove("WARMER_CONFIG")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("warmer demo-site runs"),
    );
    let stderr = site.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let site_url = tokio::task::spawn_blocking(move || loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("warmer demo-site says where it listens");
        if let Some(u) = line.strip_prefix("demo site") {
            break u.trim().to_string();
        }
    })
    .await
    .unwrap();
    let site_authority = authority(&site_url);
    let demo = format!("{DEMO_SERVICE}:{DEMO_PORT}");

    // The deploy config with the container's names and paths replaced by local ones.
    let dir = tempfile::tempdir().unwrap();
    let token = "compose-pipeline-token-3b8e1f";
    let token_file = dir.path().join("warmer_token.txt");
    std::fs::write(&token_file, token).unwrap();
    let text = read("deploy/warmer.toml")
        .replace(&demo, &site_authority)
        .replace("/run/secrets/warmer_token", token_file.to_str().unwrap())
        .replace(
            "/data/warmer.sled",
            dir.path().join("store").to_str().unwrap(),
        )
        .replace(
            "/etc/warmer/events.txt",
            root().join("deploy/events.txt").to_str().unwrap(),
        );
    let config = Config::parse(&text, "deploy/warmer.toml (local)").expect("the deploy config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let daemon = session_warmer::daemon::Daemon::start(config, Some(listener))
        .await
        .expect("the daemon starts");
    let api = format!("http://{}", daemon.addr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while daemon.pool.ready_count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no session warmed on the demo site within 90 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The scraper with the compose file's environment, names pointed at the local ones.
    let env = environment(&service("scraper"));
    let event = env["EVENT_ID"]
        .strip_prefix("${EVENT_ID:-")
        .and_then(|e| e.strip_suffix('}'))
        .unwrap_or(&env["EVENT_ID"])
        .to_string();
    let target_url = env["TARGET_URL"].replace(&demo, &site_authority);
    let warmer_url = env["WARMER_URL"].replace(&format!("warmer:{API_PORT}"), &api[7..]);
    assert_eq!(warmer_url, api);
    let script = root().join("deploy/scraper/scraper.py");
    let token_path = token_file.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .env("WARMER_URL", warmer_url)
            .env("EVENT_ID", event)
            .env("TARGET_URL", target_url)
            .env("WARMER_TOKEN_FILE", token_path)
            .env_remove("WARMER_TOKEN")
            .env("ITERATIONS", "2")
            .env("INTERVAL", "0.2")
            .env("PYTHONUNBUFFERED", "1")
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.shutdown().await;
    assert!(out.status.success(), "scraper failed:\n{output}");
    assert_eq!(
        output.matches("target answered HTTP 200").count(),
        2,
        "both calls to the demo's protected API succeed:\n{output}"
    );
    assert_eq!(
        output.matches("reported success: verdict keep").count(),
        2,
        "{output}"
    );
    assert!(!output.contains(token), "the scraper printed the token");
}

// ---------------------------------------------------------------------------------------------
// deploy/compose.scale.yml: two warmers on one Redis, two remote Chromium containers.

/// The scale-out compose file, relative to the repository.
const SCALE_COMPOSE: &str = "deploy/compose.scale.yml";
/// The warmers of the scale-out file.
const SCALE_WARMERS: [&str; 2] = ["warmer-1", "warmer-2"];
/// The remote browsers of the scale-out file.
const SCALE_BROWSERS: [&str; 2] = ["chromium-1", "chromium-2"];
/// The DevTools port the Chromium containers expose on the compose network.
const DEVTOOLS_PORT: u16 = 9222;

/// `docker-compose -f deploy/compose.scale.yml ARGS` from the repository root, which must
/// succeed; its stdout.
fn scale_compose_run(args: &[&str]) -> String {
    let out = std::process::Command::new(docker_compose())
        .current_dir(root())
        .args(["-f", SCALE_COMPOSE])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_PROJECT_NAME")
        .output()
        .expect("docker-compose runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "docker-compose -f {SCALE_COMPOSE} {} failed:\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The scale-out file as `docker-compose config` resolves it (anchors merged, paths absolute).
fn scale_compose() -> Value {
    let resolved = scale_compose_run(&["config"]);
    let docs = yaml_rust2::YamlLoader::load_from_str(&resolved).expect("resolved YAML");
    yaml_to_json(&docs[0])
}

fn scale_config() -> Config {
    Config::load(&root().join("deploy/warmer.scale.toml")).expect("deploy/warmer.scale.toml loads")
}

/// A service's networks (list or map syntax; none given means `default`).
fn networks(svc: &Value) -> BTreeSet<String> {
    match &svc["networks"] {
        Value::Object(o) => o.keys().cloned().collect(),
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect(),
        _ => BTreeSet::from(["default".to_string()]),
    }
}

/// A service's command as words.
fn command_words(svc: &Value) -> Vec<String> {
    match &svc["command"] {
        Value::Array(a) => a
            .iter()
            .map(|w| match w {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Value::String(s) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

/// `host:port` of an `http://host:port/...` URL.
fn host_port(url: &str) -> (String, u16) {
    let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
    (
        u.host_str().expect("host").to_string(),
        u.port_or_known_default().expect("port"),
    )
}

#[test]
fn scale_compose_is_accepted_and_runs_redis_two_warmers_and_two_browsers() {
    scale_compose_run(&["config", "-q"]);
    let services: BTreeSet<String> = scale_compose_run(&["config", "--services"])
        .lines()
        .map(str::to_string)
        .collect();
    let mut want: BTreeSet<String> = ["redis", DEMO_SERVICE].map(String::from).into();
    want.extend(SCALE_WARMERS.map(String::from));
    want.extend(SCALE_BROWSERS.map(String::from));
    assert_eq!(services, want);
}

#[test]
fn scale_redis_is_durable_healthchecked_and_private() {
    let c = scale_compose();
    let redis = &c["services"]["redis"];
    let words = command_words(redis);
    let flag = |name: &str| {
        let at = words
            .iter()
            .position(|w| w == name)
            .unwrap_or_else(|| panic!("redis runs without {name}: {words:?}"));
        words.get(at + 1).cloned().unwrap_or_default()
    };
    assert_eq!(flag("--appendonly"), "yes", "{words:?}");
    assert_eq!(flag("--appendfsync"), "everysec", "{words:?}");
    assert!(
        healthcheck_command(redis).contains("redis-cli ping"),
        "{}",
        redis["healthcheck"]
    );
    // Its append-only file lives on a named volume.
    let data = mounts(redis)
        .into_iter()
        .find(|m| m.target == "/data")
        .expect("redis /data is mounted");
    assert!(
        c["volumes"].get(&data.source).is_some(),
        "{} is a declared named volume",
        data.source
    );
    // Reachable only on the internal network: nothing published, no way out.
    assert!(redis.get("ports").is_none(), "redis publishes no port");
    assert_eq!(networks(redis), BTreeSet::from(["store".to_string()]));
    assert_eq!(c["networks"]["store"]["internal"], json!(true));
}

#[test]
fn scale_warmers_share_one_config_one_key_and_reach_redis_and_the_browsers() {
    let c = scale_compose();
    let cfg = scale_config();
    assert_eq!(
        cfg.store.backend,
        session_warmer::config::StoreBackend::Redis
    );
    let url = cfg
        .store
        .url
        .as_ref()
        .expect("store.url")
        .expose()
        .to_string();
    let (redis_host, redis_port) = host_port(&url);
    assert_eq!((redis_host.as_str(), redis_port), ("redis", 6379));
    let key_file = cfg
        .store
        .key_file
        .clone()
        .expect("store.key_file: the pool's shared key");
    let token_file = cfg.server.token_file.clone().expect("server.token_file");
    assert!(!cfg.server.listen.ip().is_loopback());
    let endpoints: Vec<(String, u16)> = cfg
        .browser
        .endpoints
        .iter()
        .map(|e| host_port(e.expose()))
        .collect();
    assert_eq!(
        endpoints,
        SCALE_BROWSERS
            .map(|b| (b.to_string(), DEVTOOLS_PORT))
            .to_vec(),
        "browser.endpoints name the Chromium services"
    );
    let events_file = cfg.targets[0].events_file.clone().expect("events_file");

    let mut published = BTreeSet::new();
    for name in SCALE_WARMERS {
        let w = &c["services"][name];
        // The same config file, mounted read-only where WARMER_CONFIG and the command say.
        let env = environment(w);
        let config_path = env.get("WARMER_CONFIG").expect("WARMER_CONFIG").clone();
        assert!(
            command_words(w).contains(&config_path),
            "{name}: {}",
            w["command"]
        );
        let m = mounts(w);
        let config_mount = m
            .iter()
            .find(|m| m.target == config_path)
            .unwrap_or_else(|| panic!("{name}: {config_path} is not mounted: {m:?}"));
        assert!(config_mount.read_only, "{name}: config mounted read-only");
        assert_eq!(
            PathBuf::from(&config_mount.source),
            root().join("deploy/warmer.scale.toml")
        );
        assert!(m
            .iter()
            .any(|m| Path::new(&m.target) == events_file && m.read_only));
        // The token and the shared store key as secrets, where the config reads them.
        let s = secrets(w);
        let paths: BTreeSet<&str> = s.values().map(String::as_str).collect();
        assert!(paths.contains(key_file.to_str().unwrap()), "{name}: {s:?}");
        assert!(
            paths.contains(token_file.to_str().unwrap()),
            "{name}: {s:?}"
        );
        for secret in s.keys() {
            let file = c["secrets"][secret]["file"]
                .as_str()
                .unwrap_or_else(|| panic!("secret {secret} is declared with a file"));
            assert!(
                Path::new(file).starts_with(root().join("deploy")),
                "{secret}: {file}"
            );
        }
        // On the store network with Redis and on the default one with the browsers.
        let nets = networks(w);
        assert!(
            nets.contains("store") && nets.contains("default"),
            "{name}: {nets:?}"
        );
        // Started once Redis and both browsers are healthy; its own healthcheck on /healthz.
        for dep in ["redis", SCALE_BROWSERS[0], SCALE_BROWSERS[1]] {
            assert_eq!(
                w["depends_on"][dep]["condition"],
                json!("service_healthy"),
                "{name} waits for {dep}"
            );
        }
        assert!(healthcheck_command(w).contains(&format!(
            "http://127.0.0.1:{}/healthz",
            cfg.server.listen.port()
        )));
        // Each on its own loopback port of the host.
        for p in w["ports"].as_array().expect("ports") {
            let p = p.as_str().expect("short port syntax");
            assert!(p.starts_with("127.0.0.1:"), "{name}: {p}");
            assert!(published.insert(p.split(':').nth(1).unwrap().to_string()));
        }
    }
    // The key is never committed.
    assert!(read("deploy/.gitignore")
        .lines()
        .any(|l| l.trim() == "warmer_store_key.txt"));
}

#[test]
fn scale_browsers_are_debian_chromium_reachable_only_on_the_compose_network() {
    let c = scale_compose();
    for name in SCALE_BROWSERS {
        let b = &c["services"][name];
        assert!(b.get("ports").is_none(), "{name} must not publish DevTools");
        assert!(
            b["expose"]
                .as_array()
                .expect("expose")
                .iter()
                .any(|p| p.as_str() == Some(&DEVTOOLS_PORT.to_string())),
            "{name}: {}",
            b["expose"]
        );
        assert!(networks(b).contains("default") && !networks(b).contains("store"));
        assert_eq!(
            PathBuf::from(b["build"]["context"].as_str().expect("build context")),
            root().join("deploy/chromium")
        );
        assert!(healthcheck_command(b).contains("/json/version"));
    }
    // The image: Debian's chromium package, never a downloaded browser; not root; tini.
    let dockerfile = read("deploy/chromium/Dockerfile");
    assert!(dockerfile.contains("FROM debian:bookworm-slim"));
    assert!(dockerfile.contains("apt-get install"));
    assert!(dockerfile.lines().any(|l| l.trim() == "chromium \\"));
    for download in [
        "wget ",
        "curl -o",
        "curl -L",
        "googlechromelabs",
        "dl.google.com",
    ] {
        assert!(
            !dockerfile.contains(download),
            "the image downloads: {download}"
        );
    }
    assert!(dockerfile.contains("USER chrome"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/bin/tini\", \"--\""));
    // Chromium binds DevTools to loopback whatever --remote-debugging-address says: socat
    // exposes it on 9222, which the healthcheck bypasses by asking Chromium's own port.
    let run = read("deploy/chromium/run.sh");
    assert!(run.contains("--headless") && run.contains("--remote-debugging-port=9223"));
    assert!(run.contains("--user-data-dir="));
    assert!(run.contains(&format!(
        "TCP-LISTEN:{DEVTOOLS_PORT},fork,reuseaddr,bind=0.0.0.0 TCP:127.0.0.1:9223"
    )));
    let mode = std::fs::metadata(root().join("deploy/chromium/run.sh"))
        .unwrap()
        .permissions();
    use std::os::unix::fs::PermissionsExt as _;
    assert!(mode.mode() & 0o111 != 0, "run.sh is executable");
}

#[test]
fn scale_config_targets_the_demo_site_of_the_scale_compose_file() {
    let cfg = scale_config();
    let c = scale_compose();
    let t = cfg.target("demo").expect("target demo");
    let (host, port) = host_port(&t.event_page("1001").unwrap());
    assert_eq!((host.as_str(), port), (DEMO_SERVICE, DEMO_PORT));
    assert!(c["services"][DEMO_SERVICE].is_object());
    assert!(t.pool_size > 0);
    // The launcher's flags are the container's (src/browser/launch.rs is the source).
    let launch = read("src/browser/launch.rs");
    let run = read("deploy/chromium/run.sh");
    for flag in [
        "no-sandbox",
        "disable-dev-shm-usage",
        "disable-quic",
        "mute-audio",
    ] {
        assert!(
            launch.contains(&format!("\"{flag}\"")),
            "{flag} left the launcher"
        );
        assert!(run.contains(&format!("--{flag}")), "run.sh lacks --{flag}");
    }
}
