#!/usr/bin/env python3
"""Example scraper that uses session-warmer (standard library only).

Each iteration:
  1. GET  {WARMER_URL}/api/sessions/event/{EVENT_ID}?lease=30s   (Authorization: Bearer <token>)
     -> {session_id, headers, cookies, proxy, fingerprint, expires_at, ...}
     On 503 (no session ready yet) or 429, wait as long as Retry-After says and try again.
  2. Call TARGET_URL ("{event}" replaced by EVENT_ID) with exactly the session's `headers`
     (Cookie, User-Agent, sec-ch-ua*, Accept-Language) through the session's `proxy`, if any.
  3. POST {WARMER_URL}/api/sessions/{session_id}/usage  {"success": bool, "status": int}
     so the pool can retire or rest sessions that stop working.

Environment:
  WARMER_URL         default http://warmer:3000
  EVENT_ID           required
  TARGET_URL         default http://demo-site:8080/api/event/{event} (the compose demo site)
  WARMER_TOKEN_FILE  default /run/secrets/warmer_token (WARMER_TOKEN overrides it)
  INTERVAL           seconds between iterations, default 5
  LEASE              lease asked for, default 30s
  ITERATIONS         stop after this many iterations (default 0 = forever)

Cookie values and the token are never printed: logs show names, counts and statuses only.
"""

import email.utils
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

WARMER_URL = os.environ.get("WARMER_URL", "http://warmer:3000").rstrip("/")
EVENT_ID = os.environ.get("EVENT_ID", "")
TARGET_URL = os.environ.get("TARGET_URL", "http://demo-site:8080/api/event/{event}")
TOKEN_FILE = os.environ.get("WARMER_TOKEN_FILE", "/run/secrets/warmer_token")
INTERVAL = float(os.environ.get("INTERVAL", "5"))
LEASE = os.environ.get("LEASE", "30s")
ITERATIONS = int(os.environ.get("ITERATIONS", "0"))

# Timeouts (seconds) of the calls to the warmer and to the target.
WARMER_TIMEOUT = 10
TARGET_TIMEOUT = 30
# Longest wait honoured from a Retry-After header.
MAX_RETRY_AFTER = 300

stopping = threading.Event()


def log(msg):
    print(f"scraper: {msg}", flush=True)


def on_signal(signum, _frame):
    # As PID 1 in a container, SIGTERM is ignored unless handled: handle it, stop cleanly.
    log(f"signal {signum}: stopping")
    stopping.set()


def read_token():
    token = os.environ.get("WARMER_TOKEN", "").strip()
    if token:
        return token
    try:
        with open(TOKEN_FILE, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as e:
        log(f"no token ({TOKEN_FILE}: {e.strerror}); calling the warmer without one")
        return ""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: a redirect would carry the session's Cookie header to another
    URL (maybe another host), and a redirect to a login or challenge page is a failure to
    report, not something to follow."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def retry_after(headers, default):
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return default
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            secs = when.timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    return max(1.0, min(secs, MAX_RETRY_AFTER))


def error_code(body):
    """The `code` of the warmer's `{"error": {"code", "message"}}` body, if any."""
    try:
        return json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "?"


class Warmer:
    """The two calls a scraper makes to session-warmer."""

    def __init__(self, base, token):
        self.base = base
        self.token = token
        # The warmer is reached directly, never through a proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with self.opener.open(req, timeout=WARMER_TIMEOUT) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def take(self, event, lease):
        """GET /api/sessions/event/{eventId}?lease=...: (status, headers, session or None)."""
        path = "/api/sessions/event/%s?%s" % (
            urllib.parse.quote(event, safe=""),
            urllib.parse.urlencode({"lease": lease}),
        )
        status, headers, body = self._request("GET", path)
        if status == 200:
            return status, headers, json.loads(body)
        return status, headers, body

    def report(self, session_id, success, status):
        """POST /api/sessions/{id}/usage with {"success": bool, "status": int}."""
        payload = {"success": bool(success)}
        if status is not None:
            payload["status"] = int(status)
        path = "/api/sessions/%s/usage" % urllib.parse.quote(session_id, safe="")
        code, _, body = self._request("POST", path, payload)
        if code != 200:
            return f"report failed: HTTP {code} ({error_code(body)})"
        try:
            out = json.loads(body)
            return f"verdict {out.get('verdict')}"
        except ValueError:
            return "verdict ?"


def call_target(url, headers, proxy):
    """Calls the target with exactly the session's headers, through its proxy.
    Returns (status or None, number of body bytes, error text or None)."""
    if proxy:
        proxy_handler = urllib.request.ProxyHandler({"http": proxy, "https": proxy})
    else:
        # Direct, as the session was earned: ignore any proxy from the environment.
        proxy_handler = urllib.request.ProxyHandler({})
    opener = urllib.request.build_opener(proxy_handler, NoRedirect)
    opener.addheaders = []  # no "Python-urllib" User-Agent: the session's own one is sent
    req = urllib.request.Request(url, method="GET")
    for name, value in headers.items():
        req.add_header(name, value)
    try:
        with opener.open(req, timeout=TARGET_TIMEOUT) as resp:
            return resp.status, len(resp.read()), None
    except urllib.error.HTTPError as e:
        return e.code, len(e.read() or b""), None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        return None, 0, f"{type(e).__name__}: {reason}"


def describe(session):
    """A log line for a session: ids, counts and names, never cookie values."""
    cookies = session.get("cookies") or []
    header_names = sorted((session.get("headers") or {}).keys())
    proxy = session.get("proxy")
    proxy_host = urllib.parse.urlsplit(proxy).hostname if proxy else None
    return (
        f"session {session.get('session_id')} (match {session.get('match')}, "
        f"{len(cookies)} cookies, headers {header_names}, "
        f"proxy {proxy_host or 'direct'}, expires {session.get('expires_at')})"
    )


def iteration(warmer):
    """One take -> call -> report. Returns seconds to wait before the next one."""
    status, headers, session = warmer.take(EVENT_ID, LEASE)
    if status in (503, 429):
        wait = retry_after(headers, INTERVAL)
        log(f"no session yet (HTTP {status}, {error_code(session)}); retrying in {wait:.0f}s")
        return wait
    if status == 401:
        log("warmer says 401: the token does not match the warmer_token secret")
        return max(INTERVAL, 30)
    if status != 200:
        log(f"taking a session failed: HTTP {status} ({error_code(session)})")
        return max(INTERVAL, 10)

    session_id = session["session_id"]
    log("took " + describe(session))
    proxy = session.get("proxy")
    scheme = urllib.parse.urlsplit(proxy).scheme.lower() if proxy else None
    if scheme not in (None, "http", "https"):
        # urllib speaks HTTP proxies only, and going direct would break the session's binding
        # to its proxy's IP: skip the target (nothing to report about the session).
        log(f"skipped the target: a {scheme} proxy needs a SOCKS-capable client")
        return INTERVAL
    url = TARGET_URL.replace("{event}", urllib.parse.quote(EVENT_ID, safe=""))
    target_status, size, err = call_target(url, session.get("headers") or {}, proxy)
    success = target_status is not None and 200 <= target_status < 300
    if err:
        log(f"target call failed: {err}")
    else:
        log(f"target answered HTTP {target_status} ({size} bytes)")
    outcome = warmer.report(session_id, success, target_status)
    log(f"reported {'success' if success else 'failure'}: {outcome}")
    return INTERVAL


def main():
    if not EVENT_ID:
        log("EVENT_ID is required")
        return 2
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    warmer = Warmer(WARMER_URL, read_token())
    log(f"using {WARMER_URL} for event {EVENT_ID}")
    done = 0
    while not stopping.is_set():
        try:
            wait = iteration(warmer)
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            log(f"warmer unreachable or bad answer: {reason}")
            wait = max(INTERVAL, 5)
        done += 1
        if ITERATIONS and done >= ITERATIONS:
            break
        # Jitter so that many scrapers do not move in lockstep.
        stopping.wait(wait * random.uniform(0.8, 1.2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
