"""Fixtures of the client's tests: a running daemon and demo sites, named by the environment.

``tests/python_client.rs`` (run by ``scripts/test``) starts them and runs pytest with:

* ``WARMER_URL`` and ``WARMER_TOKEN``: the daemon (it has a token);
* ``DEMO_URL``: the demo site of target ``demo`` (two sessions, each with a proxy that needs
  credentials);
* ``DEMO_REVOCABLE_URL``: the demo site of target ``fragile`` (one session, no proxy), whose
  cookies the tests revoke to see a 403 retried with a fresh session.

Nothing here is optional: a missing variable fails the tests.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import pytest
import requests

from session_warmer import Warmer

#: The daemon's targets, as tests/python_client.rs configures them.
TARGET = "demo"
FRAGILE = "fragile"
#: Seconds to wait for a ready session: the pool warms in a real Chromium.
READY_WAIT = 60.0


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"${name} is not set: these tests need a running daemon and demo sites; run them "
            "with `cargo nextest run --test python_client` (or scripts/test)",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def warmer_url() -> str:
    return _env("WARMER_URL")


@pytest.fixture(scope="session")
def token() -> str:
    return _env("WARMER_TOKEN")


@pytest.fixture(scope="session")
def demo_url() -> str:
    return _env("DEMO_URL")


@pytest.fixture(scope="session")
def revocable_url() -> str:
    return _env("DEMO_REVOCABLE_URL")


@pytest.fixture()
def warmer(warmer_url: str, token: str) -> Warmer:
    return Warmer(warmer_url, token, wait=READY_WAIT)


def demo_stats(site: str) -> Dict[str, Any]:
    """The demo site's counters (``api_ok``, ``api_denied``, ...)."""
    r = requests.get(f"{site}/__demo/stats", timeout=10)
    r.raise_for_status()
    out: Dict[str, Any] = r.json()
    return out


def revoke(site: str) -> None:
    """Makes the demo site forget every visitor: every cookie it issued stops working."""
    r = requests.post(f"{site}/__demo/revoke", timeout=10)
    r.raise_for_status()


@pytest.fixture()
def stale_fragile(warmer: Warmer, revocable_url: str) -> str:
    """The id of target ``fragile``'s only session, after its site revoked its cookies: the
    session is still ready in the pool, and the site answers it 403."""
    ws = warmer.take(target=FRAGILE, wait=READY_WAIT)
    revoke(revocable_url)
    r = requests.get(f"{revocable_url}/api/event/1001", headers=ws.headers, timeout=20)
    assert r.status_code == 403, f"revoked cookies must be refused: {r.status_code} {r.text}"
    return ws.id
