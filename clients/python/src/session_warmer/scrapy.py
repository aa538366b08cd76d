"""A Scrapy downloader middleware that sends every request as a warm session.

Enable it in your settings::

    DOWNLOADER_MIDDLEWARES = {"session_warmer.scrapy.SessionWarmerMiddleware": 725}
    SESSION_WARMER_URL = "http://127.0.0.1:3000"
    SESSION_WARMER_TOKEN = "..."          # when the daemon has one
    SESSION_WARMER_TARGET = "tickets"     # when the daemon has several targets

Priority 725 puts it after Scrapy's ``CookiesMiddleware`` (700), so the session's ``Cookie``
header is the one sent, and before ``HttpProxyMiddleware`` (750), which turns the session's proxy
credentials into ``Proxy-Authorization``.

For each request it takes a warm session from the daemon (in a thread: the reactor never
waits on the daemon), puts the session's headers (``Cookie``, ``User-Agent``, ``sec-ch-ua*``,
``Accept-Language``) on the request, replacing Scrapy's, and sets ``meta["proxy"]`` to the
session's proxy. Each response's status is reported to the daemon (a success below 400 and for
404/410; 401/403 retire the session, 429 rests it). A 401 or 403 is retried once with a fresh
session (``dont_filter``); the second answer is passed on whatever it is. A download that fails
without a response (timeout, connection refused) is reported as a failure without a status.
Every request — each redirect hop and each retry of Scrapy's ``RetryMiddleware`` included —
takes its own session and is reported once.

Settings:
    ``SESSION_WARMER_URL``: the daemon (default ``http://127.0.0.1:3000``).
    ``SESSION_WARMER_TOKEN``: its bearer token (proxy credentials are only given with it).
    ``SESSION_WARMER_TARGET``: the target to take sessions of.
    ``SESSION_WARMER_EVENT``: the event to ask for (default: any session of the target).
    ``SESSION_WARMER_LEASE``: lease each session until its response is reported, at most this
    long (e.g. ``"30s"``), so no other scraper uses it meanwhile.
    ``SESSION_WARMER_WAIT``: seconds to wait for a session while none is ready (default 30),
    honouring the daemon's ``Retry-After``; then the request fails with
    :class:`~session_warmer.NoSessionReady`.
    ``SESSION_WARMER_RETRY_BLOCKED``: retry a 401/403 once with a fresh session (default on).

Request meta read: ``session_warmer`` (``False``: leave this request alone),
``session_warmer_event`` and ``session_warmer_target`` (override the settings for one request).
Request meta written: ``session_warmer_session_id``, ``session_warmer_match`` (``"event"`` or
``"target"``), ``session_warmer_retried`` (``True`` on the retry of a 401/403).

Crawl stats: ``session_warmer/taken``, ``session_warmer/reported/<status>``,
``session_warmer/reported/exception``, ``session_warmer/retried_blocked``,
``session_warmer/report_failed``, ``session_warmer/no_session``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Union

from scrapy import Request, Spider
from scrapy.crawler import Crawler
from scrapy.http import Response
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread as _defer_to_thread

from .client import (
    DEFAULT_URL,
    NoSessionReady,
    Report,
    Warmer,
    WarmerError,
    WarmSession,
    succeeded,
)

__all__ = ["SessionWarmerMiddleware"]

log = logging.getLogger("session_warmer.scrapy")

#: Runs a blocking call in the reactor's thread pool; the calls to the daemon go through it.
deferToThread: Callable[..., "Deferred[Any]"] = _defer_to_thread

_SESSION_ID = "session_warmer_session_id"
_MATCH = "session_warmer_match"
_RETRIED = "session_warmer_retried"
_HEADERS = "_session_warmer_headers"
_PROXY = "_session_warmer_proxy"
_REPORTED = "_session_warmer_reported"


class SessionWarmerMiddleware:
    """Applies a warm session to each request, reports each response, retries a 401/403 once
    with a fresh session. See the module's documentation for settings and meta keys."""

    def __init__(
        self,
        warmer: Warmer,
        *,
        target: Optional[str] = None,
        event: Optional[str] = None,
        lease: Optional[str] = None,
        wait: float = 30.0,
        retry_blocked: bool = True,
        crawler: Optional[Crawler] = None,
    ) -> None:
        self.warmer = warmer
        self.target = target
        self.event = event
        self.lease = lease
        self.wait = wait
        self.retry_blocked = retry_blocked
        self.stats = crawler.stats if crawler is not None else None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> "SessionWarmerMiddleware":
        s = crawler.settings
        warmer = Warmer(
            s.get("SESSION_WARMER_URL") or DEFAULT_URL,
            s.get("SESSION_WARMER_TOKEN") or None,
        )
        return cls(
            warmer,
            target=s.get("SESSION_WARMER_TARGET") or None,
            event=s.get("SESSION_WARMER_EVENT") or None,
            lease=s.get("SESSION_WARMER_LEASE") or None,
            wait=s.getfloat("SESSION_WARMER_WAIT", 30.0),
            retry_blocked=s.getbool("SESSION_WARMER_RETRY_BLOCKED", True),
            crawler=crawler,
        )

    def _inc(self, key: str) -> None:
        if self.stats is not None:
            self.stats.inc_value(f"session_warmer/{key}")

    async def process_request(self, request: Request, spider: Spider) -> None:
        """Takes a session and puts its headers and proxy on ``request``."""
        if request.meta.get("session_warmer") is False:
            return None
        event = request.meta.get("session_warmer_event", self.event)
        target = request.meta.get("session_warmer_target", self.target)
        try:
            ws: WarmSession = await deferToThread(
                self.warmer.take, event, target, self.lease, wait=self.wait
            )
        except NoSessionReady:
            self._inc("no_session")
            raise
        self._inc("taken")
        for name in request.meta.get(_HEADERS, ()):
            request.headers.pop(name, None)
        for name, value in ws.headers.items():
            request.headers[name] = value
        request.meta[_HEADERS] = list(ws.headers)
        # The session's proxy, unless the request names its own (one we set earlier is ours).
        if _PROXY in request.meta or request.meta.get("proxy") is None:
            if ws.proxy:
                request.meta["proxy"] = ws.proxy
                request.meta[_PROXY] = ws.proxy
            else:
                request.meta.pop(_PROXY, None)
                request.meta.pop("proxy", None)
        request.meta[_SESSION_ID] = ws.id
        request.meta[_MATCH] = ws.match
        request.meta.pop(_REPORTED, None)
        return None

    async def _report(self, session_id: str, success: bool, status: Optional[int]) -> Optional[Report]:
        try:
            report: Report = await deferToThread(self.warmer.report, session_id, success, status)
        except WarmerError as e:
            self._inc("report_failed")
            log.warning("session-warmer: report on session %s failed: %s", session_id, e)
            return None
        self._inc(f"reported/{status if status is not None else 'exception'}")
        return report

    async def process_response(
        self, request: Request, response: Response, spider: Spider
    ) -> Union[Request, Response]:
        """Reports ``response.status``; answers a 401/403 with one retry on a fresh session."""
        sid = request.meta.get(_SESSION_ID)
        if not sid or request.meta.get(_REPORTED) == sid:
            return response
        request.meta[_REPORTED] = sid
        status = response.status
        report = await self._report(sid, succeeded(status), status)
        if status in (401, 403) and self.retry_blocked and not request.meta.get(_RETRIED):
            self._inc("retried_blocked")
            log.info(
                "session-warmer: %s answered %d with session %s (%s); retrying once with a fresh session",
                request.url,
                status,
                sid,
                report.verdict if report else "not reported",
            )
            retry = request.replace(dont_filter=True)
            retry.meta[_RETRIED] = True
            for key in (_SESSION_ID, _MATCH, _REPORTED):
                retry.meta.pop(key, None)
            return retry
        return response

    async def process_exception(
        self, request: Request, exception: BaseException, spider: Spider
    ) -> None:
        """Reports a download that failed without a response as a failure (no status)."""
        sid = request.meta.get(_SESSION_ID)
        if sid and request.meta.get(_REPORTED) != sid:
            request.meta[_REPORTED] = sid
            await self._report(sid, False, None)
        return None
