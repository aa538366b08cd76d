"""A ``requests.Session`` that sends every request as a warm session.

::

    from session_warmer import Warmer, WarmedSession

    with WarmedSession(Warmer("http://127.0.0.1:3000", token), event="1001") as http:
        r = http.get("https://tickets.example/api/event/1001")

Each request goes out with the warm session's headers (its ``Cookie`` and ``User-Agent``
included) through its proxy; each response's status is reported to the daemon. The same warm
session is kept from one request to the next, like a browser tab, until a report takes it out
of rotation (401/403 retire it, 429 rests it, repeated failures retire it): then the next
request takes a fresh one. A 401 or 403 is retried once, with a fresh session.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import requests

from .client import Report, Warmer, WarmerError, WarmSession

log = logging.getLogger("session_warmer")

__all__ = ["WarmedSession"]

# requests.Session.request's parameters after method and url, in order.
_REQUEST_PARAMS = (
    "params",
    "data",
    "headers",
    "cookies",
    "files",
    "auth",
    "timeout",
    "allow_redirects",
    "proxies",
    "hooks",
    "stream",
    "verify",
    "cert",
    "json",
)


class WarmedSession(requests.Session):
    """A ``requests.Session`` backed by the warm sessions of a session-warmer daemon.

    Args:
        warmer: the daemon's client.
        event: the event to ask for (``None``: any session of the target).
        target: the target's name.
        wait: seconds to wait for a session when none is ready (default: the warmer's).
        retry_blocked: retry a 401/403 once with a fresh session (default ``True``).

    Headers you pass to a request are sent over the session's (do not override ``Cookie`` or
    ``User-Agent``: the site binds the cookies to that identity); ``proxies=`` you pass win over
    the session's proxy. A request that fails without a response (connection error, timeout) is
    reported as a failure without a status, and the exception propagates.

    Attributes:
        current: the warm session in use, ``None`` before the first request or after one was
            taken out of rotation.
        last_report: the daemon's answer to the last report.
    """

    def __init__(
        self,
        warmer: Warmer,
        event: Optional[str] = None,
        target: Optional[str] = None,
        *,
        wait: Optional[float] = None,
        retry_blocked: bool = True,
    ) -> None:
        super().__init__()
        self.warmer = warmer
        self.event = event
        self.target = target
        self.wait = wait
        self.retry_blocked = retry_blocked
        self.current: Optional[WarmSession] = None
        self.last_report: Optional[Report] = None

    def warm_session(self) -> WarmSession:
        """The warm session in use, taking one when there is none."""
        if self.current is None:
            self.current = self.warmer.take(self.event, self.target, wait=self.wait)
        return self.current

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Sends a request as the warm session (see the class), reporting its status."""
        if len(args) > len(_REQUEST_PARAMS):
            raise TypeError("too many positional arguments")
        for name, value in zip(_REQUEST_PARAMS, args):
            if name in kwargs:
                raise TypeError(f"request() got multiple values for argument {name!r}")
            kwargs[name] = value
        attempt = 0
        while True:
            attempt += 1
            ws = self.warm_session()
            kw = dict(kwargs)
            headers: Dict[str, Any] = dict(ws.headers)
            headers.update(kwargs.get("headers") or {})
            kw["headers"] = headers
            if ws.proxy and kwargs.get("proxies") is None:
                kw["proxies"] = ws.proxies
            try:
                response = super().request(method, url, **kw)
            except requests.RequestException:
                self._report(ws, False, None)
                raise
            self._report(ws, None, response.status_code)
            if (
                response.status_code in (401, 403)
                and self.retry_blocked
                and attempt == 1
            ):
                response.close()
                continue
            return response

    def _report(self, ws: WarmSession, success: Optional[bool], status: Optional[int]) -> None:
        try:
            if success is None and status is not None:
                report = ws.report_status(status)
            else:
                report = ws.report(bool(success), status)
        except WarmerError as e:
            # The session is gone from the daemon (deleted, or the daemon restarted without
            # it), or the daemon is unreachable: take another next time; the target's response
            # still stands.
            log.warning("session-warmer: report on session %s failed: %s", ws.id, e)
            self.current = None
            return
        self.last_report = report
        if not report.kept:
            self.current = None
