"""schemathesis hooks of scripts/fuzz-api: loopback-only bodies, known ids now and then, a log of
every call, one check. Copied next to the run's schemathesis.toml as fuzz_api_hooks.py."""
import ast, json, os, re, threading, time, zlib
import requests
import schemathesis

# CPython before 3.11.8/3.12.1 corrupts the AST constructor's recursion depth when threads parse
# at once ("SystemError: AST constructor recursion depth mismatch", cpython#106905); hypothesis
# parses lambdas' source in every worker thread. One parse at a time.
_parse, _parse_lock = ast.parse, threading.Lock()


def _serial_parse(*args, **kwargs):
    with _parse_lock:
        return _parse(*args, **kwargs)


ast.parse = _serial_parse

API, DEMO, TOKEN, LOG = (os.environ[k] for k in ("FUZZ_API", "FUZZ_DEMO", "FUZZ_TOKEN", "FUZZ_LOG"))
ID = re.compile(r"^(\.?[A-Za-z0-9_:-])*\.?$")
DEMO_EVENTS = [str(1001 + i) for i in range(10)]
LOOPBACK = re.compile(r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?(/[^\\@\s]*)?$")
# Schemes the daemon rejects before anything is loaded.
REJECTED = ("file:", "ftp:", "data:", "javascript:", "about:", "chrome:", "ws:", "wss:", "blob:")


def loopback_only(value, fallback):
    """`value` unless a URL parser (WHATWG: tabs/newlines dropped, C0 and spaces trimmed,
    case-folded scheme) could read it as a URL to a host other than loopback."""
    if not isinstance(value, str):
        return value
    n = re.sub(r"[\t\n\r]", "", value).strip("".join(map(chr, range(0x21)))).lower()
    if ":" not in n or n.startswith(REJECTED) or LOOPBACK.match(n):
        return value
    return fallback


def pick(value, every):
    """Deterministic 1-in-`every` choice, so a seed replays the same requests."""
    return zlib.crc32(str(value).encode()) % every == 0


_live = {"at": 0.0, "ids": []}


def live_session():
    if time.monotonic() - _live["at"] > 2:
        try:
            r = requests.get(f"{API}/api/v1/sessions", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            _live["ids"] = [s["session_id"] for s in r.json() if s["state"] == "ready"]
        except Exception:
            _live["ids"] = []
        _live["at"] = time.monotonic()
    return _live["ids"][0] if _live["ids"] else None


@schemathesis.hook
def before_call(context, case, kwargs):
    op = f"{case.method.upper()} {case.operation.path}"
    body = case.body
    if isinstance(body, dict):
        if "url" in body:
            body["url"] = loopback_only(body["url"], f"{DEMO}/api/event/1001")
        if "proxy" in body:
            body["proxy"] = loopback_only(body["proxy"], "http://127.0.0.1:9")
        # Now and then an event the demo site knows, so warms also succeed.
        ev = body.get("event")
        if op == "POST /api/v1/sessions" and isinstance(ev, str) and ID.match(ev) and pick(ev, 3):
            body["event"] = DEMO_EVENTS[zlib.crc32(ev.encode()) % 10]
    params = case.path_parameters or {}
    ev = params.get("eventId")
    if isinstance(ev, str) and ID.match(ev) and pick(ev, 3):
        params["eventId"] = DEMO_EVENTS[zlib.crc32(ev.encode()) % 10]
    # Now and then a live session for fetch, so pages load in a session's context.
    if op == "POST /api/v1/fetch" and case.headers:
        sid = case.headers.get("X-Session-ID")
        if isinstance(sid, str) and ID.match(sid) and sid and pick(sid, 2):
            live = live_session()
            if live:
                case.headers["X-Session-ID"] = live


@schemathesis.hook
def after_call(context, case, response):
    try:
        code = json.loads(response.content)["error"]["code"]
    except Exception:
        code = None
    with open(LOG, "a") as f:
        f.write(json.dumps({
            "op": f"{case.method.upper()} {case.operation.path}",
            "documented": case.method.upper() == case.operation.method.upper(),
            "status": response.status_code,
            "code": code,
            "elapsed": round(response.elapsed, 3),
        }) + "\n")


# 5xx codes that name a target, browser or capacity condition, not a fault of the daemon.
TARGET_FAILURES = {"target_http", "network", "navigation_timeout", "capture_failed",
                   "page_too_large", "browser_gone", "no_session", "all_sessions_busy",
                   "shutting_down"}


@schemathesis.check
def error_body_is_json(ctx, response, case):
    """Every 4xx/5xx is {"error": {"code": str, "message": str}} JSON; a 5xx names a target,
    browser or capacity condition (never `internal`)."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    ctype = response.headers.get("content-type")
    ctype = (ctype[0] if isinstance(ctype, list) else ctype) or ""
    try:
        err = json.loads(response.content)["error"]
        ok = isinstance(err["code"], str) and isinstance(err["message"], str)
    except Exception:
        ok = False
    if not ok or not ctype.startswith("application/json"):
        raise AssertionError(f"not an error body of the contract (content-type {ctype!r}): {response.content[:200]!r}")
    if response.status_code >= 500 and err["code"] not in TARGET_FAILURES:
        raise AssertionError(f"{response.status_code} {err['code']!r} is not a target, browser or capacity failure")
    return None
