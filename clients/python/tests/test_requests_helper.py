"""WarmedSession (requests) and WarmSession.apply against the daemon and the demo site."""

from __future__ import annotations

import requests

from session_warmer import Warmer, WarmedSession

from conftest import FRAGILE, TARGET, demo_stats


def test_a_warmed_session_sends_every_request_as_one_warm_session_and_reports_each(
    warmer: Warmer, demo_url: str
) -> None:
    with WarmedSession(warmer, event="1002", target=TARGET) as http:
        first = http.warm_session()
        before = warmer.session_info(first.id)
        statuses = [http.get(f"{demo_url}/api/event/{e}", timeout=20).status_code
                    for e in ("1002", "1004", "1006")]
        assert statuses == [200, 200, 200]
        assert http.current is not None, "kept between requests"
        ws = http.current
        assert ws is first
        assert http.last_report is not None and http.last_report.verdict == "keep"
        info = warmer.session_info(ws.id)
        assert info["successes"] == before["successes"] + 3, (before, info)
        # The caller's headers go on top; the session's identity stays.
        r = http.get(f"{demo_url}/api/event/1007", headers={"X-Trace": "1"}, timeout=20)
        assert r.status_code == 200
        assert r.request.headers["User-Agent"] == ws.user_agent
        assert r.request.headers["Cookie"] == ws.headers["Cookie"]
        assert r.request.headers["X-Trace"] == "1"
        assert http.current is ws


def test_a_blocked_request_is_retried_once_with_a_fresh_session(
    warmer: Warmer, revocable_url: str, stale_fragile: str
) -> None:
    counts = demo_stats(revocable_url)
    with WarmedSession(warmer, target=FRAGILE, wait=60) as http:
        r = http.get(f"{revocable_url}/api/event/1005", timeout=20)
        assert r.status_code == 200, r.text
        assert r.json()["event"] == "1005"
        assert http.current is not None and http.current.id != stale_fragile
    after = demo_stats(revocable_url)
    assert after["api_denied"] == counts["api_denied"] + 1, (counts, after)
    assert after["api_ok"] == counts["api_ok"] + 1, (counts, after)
    stale = warmer.session_info(stale_fragile)
    assert stale["state"] == "retired", stale
    assert "403" in (stale["retired_reason"] or ""), stale


def test_apply_puts_headers_and_proxy_on_a_requests_session(
    warmer: Warmer, demo_url: str
) -> None:
    with warmer.take("1008", target=TARGET) as ws:
        http = ws.apply()
        assert isinstance(http, requests.Session)
        assert http.proxies == ws.proxies
        r = http.get(f"{demo_url}/api/event/1008", timeout=20)
        assert r.status_code == 200, r.text
        ws.report_status(r.status_code)
    assert ws.last_report is not None and ws.last_report.verdict == "keep"
