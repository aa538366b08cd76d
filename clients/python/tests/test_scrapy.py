"""SessionWarmerMiddleware in a real Scrapy crawl of the demo site's protected API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from session_warmer import Warmer

from conftest import FRAGILE, TARGET, demo_stats

CRAWL = Path(__file__).with_name("crawl.py")


def crawl(tmp_path: Path, target: str, urls: List[str]) -> Dict[str, Any]:
    """Runs tests/crawl.py (a CrawlerProcess with the middleware) and returns its output."""
    out = tmp_path / "crawl.json"
    env = dict(os.environ, CRAWL_TARGET=target)
    p = subprocess.run(
        [sys.executable, str(CRAWL), str(out), *urls],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.returncode == 0 and out.exists(), f"crawl failed ({p.returncode}):\n{p.stderr}"
    result: Dict[str, Any] = json.loads(out.read_text())
    result["log"] = p.stderr
    return result


def test_each_request_goes_out_as_a_warm_session_and_each_response_is_reported(
    tmp_path: Path, warmer: Warmer, demo_url: str
) -> None:
    events = [str(1001 + i) for i in range(10)]
    before = {s["session_id"]: s for s in warmer.active()}
    api_ok = demo_stats(demo_url)["api_ok"]

    result = crawl(tmp_path, TARGET, [f"{demo_url}/api/event/{e}" for e in events])
    items, stats, log = result["items"], result["stats"], result["log"]

    assert sorted(i["event"] for i in items) == events, log
    assert all(i["status"] == 200 for i in items), items
    assert not any(i["retried"] for i in items), items
    assert demo_stats(demo_url)["api_ok"] == api_ok + 10
    assert stats.get("session_warmer/taken") == 10, stats
    assert stats.get("session_warmer/reported/200") == 10, stats
    assert "session_warmer/retried_blocked" not in stats, stats
    # Each request went through its session's proxy, with that session's User-Agent.
    for item in items:
        info = warmer.session_info(item["session_id"])
        assert info["target"] == TARGET
        assert item["user_agent"] == info["fingerprint"]["user_agent"]
        assert item["proxy"] and info["proxy"], (item, info)
        assert item["proxy"].rsplit(":", 1)[1] == info["proxy"].rsplit(":", 1)[1], (item, info)
    # The daemon counted one take and one successful report per request.
    used: Dict[str, int] = {}
    for item in items:
        used[item["session_id"]] = used.get(item["session_id"], 0) + 1
    for sid, n in used.items():
        info = warmer.session_info(sid)
        was = before.get(sid, {"uses": 0, "successes": 0})
        assert info["uses"] - was["uses"] == n, (sid, n, was, info)
        assert info["successes"] - was["successes"] == n, (sid, n, was, info)


def test_a_403_is_retried_once_with_a_fresh_session(
    tmp_path: Path, warmer: Warmer, revocable_url: str, stale_fragile: str
) -> None:
    counts = demo_stats(revocable_url)
    result = crawl(tmp_path, FRAGILE, [f"{revocable_url}/api/event/1009"])
    items, stats, log = result["items"], result["stats"], result["log"]

    assert len(items) == 1, log
    item = items[0]
    assert (item["status"], item["event"], item["retried"]) == (200, "1009", True), (item, log)
    assert item["session_id"] != stale_fragile
    assert stats.get("session_warmer/taken") == 2, stats
    assert stats.get("session_warmer/reported/403") == 1, stats
    assert stats.get("session_warmer/reported/200") == 1, stats
    assert stats.get("session_warmer/retried_blocked") == 1, stats
    after = demo_stats(revocable_url)
    assert after["api_denied"] == counts["api_denied"] + 1, (counts, after)
    assert after["api_ok"] == counts["api_ok"] + 1, (counts, after)
    stale = warmer.session_info(stale_fragile)
    assert stale["state"] == "retired", stale
    assert "403" in (stale["retired_reason"] or ""), stale
    assert warmer.session_info(item["session_id"])["successes"] >= 1


def test_a_second_403_is_passed_on_not_retried_again(
    tmp_path: Path, warmer: Warmer, demo_url: str, revocable_url: str
) -> None:
    # Sessions of target "demo" carry the other site's cookies: the revocable site refuses
    # every one of them, so the retry is refused too, and the crawl must stop there.
    counts = demo_stats(revocable_url)
    result = crawl(tmp_path, TARGET, [f"{revocable_url}/api/event/1010"])
    items, stats, log = result["items"], result["stats"], result["log"]

    assert len(items) == 1, log
    item = items[0]
    assert (item["status"], item["retried"]) == (403, True), (item, log)
    assert stats.get("session_warmer/taken") == 2, stats
    assert stats.get("session_warmer/reported/403") == 2, stats
    assert stats.get("session_warmer/retried_blocked") == 1, stats
    assert demo_stats(revocable_url)["api_denied"] == counts["api_denied"] + 2
    # Both sessions were retired by their 403; the pool refills.
    retired = warmer.session_info(item["session_id"])
    assert retired["state"] == "retired", retired
    assert warmer.take(target=TARGET, wait=60).target == TARGET
