"""Warmer: take, report, leases, waiting on 503, errors, auth — against the real daemon."""

from __future__ import annotations

import datetime as dt
import time
from typing import List

import pytest
import requests

from session_warmer import (
    NoSessionReady,
    NotFound,
    Unauthorized,
    Warmer,
    WarmerError,
    WarmerUnavailable,
    WarmSession,
    succeeded,
)

from conftest import FRAGILE, READY_WAIT, TARGET, demo_stats


def call_api(ws: WarmSession, site: str, event: str) -> requests.Response:
    """What a scraper does with a session: exactly its headers, through its proxy."""
    return requests.get(
        f"{site}/api/event/{event}", headers=ws.headers, proxies=ws.proxies, timeout=20
    )


def test_a_taken_session_opens_the_protected_api_and_its_report_is_counted(
    warmer: Warmer, demo_url: str
) -> None:
    ws = warmer.take("1003", target=TARGET)
    assert ws.target == TARGET
    assert ws.match in ("event", "target")
    for name in ("Cookie", "User-Agent", "Accept-Language"):
        assert ws.headers.get(name), f"{name} in {ws.headers}"
    assert "visitor=" in ws.headers["Cookie"]
    assert ws.user_agent == ws.fingerprint["user_agent"]
    # The demo target's proxy needs credentials; with the token the daemon gives them.
    assert ws.proxy and ws.proxy.startswith("http://") and "@127.0.0.1:" in ws.proxy, ws.proxy
    assert ws.proxies == {"http": ws.proxy, "https": ws.proxy}
    before = warmer.session_info(ws.id)
    api_ok = demo_stats(demo_url)["api_ok"]

    r = call_api(ws, demo_url, "1003")
    assert r.status_code == 200, r.text
    assert r.json()["event"] == "1003"
    assert demo_stats(demo_url)["api_ok"] == api_ok + 1

    report = ws.report_status(r.status_code)
    assert (report.session_id, report.verdict, report.kept) == (ws.id, "keep", True)
    assert ws.reported and ws.last_report == report
    after = warmer.session_info(ws.id)
    assert after["successes"] == before["successes"] + 1, (before, after)
    assert after["state"] == "ready"

    # Without the session's headers the same request is refused: the 200 was theirs.
    assert requests.get(f"{demo_url}/api/event/1003", timeout=20).status_code == 403


def test_take_without_an_event_serves_any_session_of_the_target(warmer: Warmer) -> None:
    ws = warmer.take(target=TARGET)
    assert ws.target == TARGET
    # No session is warmed on the placeholder event: the daemon falls back to the target's.
    assert ws.match == "target"
    assert warmer.take(None, TARGET).target == TARGET


def test_a_lease_keeps_the_session_to_its_holder_until_the_report(warmer: Warmer) -> None:
    # Target "fragile" has one session, so a lease on it leaves nothing for anyone else.
    held = warmer.take(target=FRAGILE, lease="20s")
    assert held.lease is not None and held.lease.seconds == 20
    with pytest.raises(NoSessionReady) as busy:
        warmer.take(target=FRAGILE, wait=0)
    assert busy.value.status == 503
    assert busy.value.code == "all_sessions_busy"
    assert busy.value.retry_after is not None and busy.value.retry_after > 0
    # Reporting ends the lease (the daemon has no separate release).
    held.report(True, 200)
    again = warmer.take(target=FRAGILE, wait=0)
    assert again.id == held.id
    assert again.lease is None


def test_take_waits_on_503_as_retry_after_says_and_gives_up_at_its_deadline(
    warmer: Warmer,
) -> None:
    held = warmer.take(target=FRAGILE, lease=dt.timedelta(seconds=3))
    assert held.lease is not None and held.lease.seconds == 3
    pauses: List[float] = []
    warmer.on_wait = lambda pause, err: pauses.append(pause)
    # A budget shorter than the lease: gives up, having slept no longer than the budget.
    started = time.monotonic()
    with pytest.raises(NoSessionReady):
        warmer.take(target=FRAGILE, wait=0.5)
    assert time.monotonic() - started < 3
    assert pauses and sum(pauses) <= 0.5 + 1e-6, pauses
    # A budget past the lease: waits (Retry-After is 2 s for "all busy") and gets it.
    pauses.clear()
    started = time.monotonic()
    got = warmer.take(target=FRAGILE, wait=READY_WAIT)
    assert got.id == held.id
    assert pauses and pauses[0] == 2.0, pauses
    assert time.monotonic() - started >= 1.5
    got.report(True, 200)


def test_the_context_manager_reports_and_releases(warmer: Warmer, revocable_url: str) -> None:
    with warmer.take(target=FRAGILE, lease="20s") as ws:
        with pytest.raises(NoSessionReady):
            warmer.take(target=FRAGILE, wait=0)
        before = warmer.session_info(ws.id)
    assert ws.reported and ws.last_report is not None
    assert ws.last_report.verdict == "keep"
    assert warmer.session_info(ws.id)["successes"] == before["successes"] + 1
    assert warmer.take(target=FRAGILE, wait=0).id == ws.id, "released on exit"

    # An exception in the block is a failure; the exception is not swallowed.
    with pytest.raises(RuntimeError, match="scraper broke"):
        with warmer.take(target=FRAGILE, lease="20s") as ws:
            before = warmer.session_info(ws.id)
            raise RuntimeError("scraper broke")
    assert ws.last_report is not None
    assert warmer.session_info(ws.id)["failures"] == before["failures"] + 1
    # An explicit report is not repeated on exit.
    with warmer.take(target=FRAGILE) as ws:
        ws.report(True, 200)
        before = warmer.session_info(ws.id)
    assert warmer.session_info(ws.id)["successes"] == before["successes"]


def test_errors_are_typed_with_the_daemons_code(warmer: Warmer, warmer_url: str) -> None:
    with pytest.raises(NotFound) as e:
        warmer.take("1001", target="no-such-target")
    assert (e.value.status, e.value.code) == (404, "unknown_target")
    with pytest.raises(NotFound) as e:
        warmer.report("0123456789abcdef", True, 200)
    assert e.value.code == "unknown_session"
    with pytest.raises(WarmerError) as bad:
        warmer.take("1001", target=TARGET, lease="11m")
    assert (bad.value.status, bad.value.code) == (400, "bad_request")
    assert "lease" in bad.value.message
    with pytest.raises(ValueError):
        warmer.take("1001", target=TARGET, lease=0)
    with pytest.raises(WarmerUnavailable):
        Warmer("http://127.0.0.1:1", timeout=2).take("1001")


def test_the_token_is_sent_as_a_bearer_and_required(warmer_url: str, token: str) -> None:
    for client in (Warmer(warmer_url), Warmer(warmer_url, "wrong-token-0123456789")):
        with pytest.raises(Unauthorized) as e:
            client.take("1001", target=TARGET)
        assert (e.value.status, e.value.code) == (401, "unauthorized")
    assert Warmer(warmer_url, token).take("1001", target=TARGET, wait=READY_WAIT).id
    assert "***" in repr(Warmer(warmer_url, token)) and token not in repr(Warmer(warmer_url, token))


def test_from_env_reads_warmer_url_and_token(
    monkeypatch: pytest.MonkeyPatch, warmer_url: str, token: str
) -> None:
    monkeypatch.setenv("WARMER_URL", warmer_url)
    monkeypatch.setenv("WARMER_TOKEN", token)
    w = Warmer.from_env()
    assert (w.url, w.token) == (warmer_url, token)
    assert w.stats()["activeSessions"] >= 1


def test_success_is_decided_from_the_status() -> None:
    assert all(succeeded(s) for s in (200, 204, 301, 304, 404, 410))
    assert not any(succeeded(s) for s in (400, 401, 403, 429, 500, 503))
