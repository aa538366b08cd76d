"""The HTTP client of a session-warmer daemon: take a warm session, use it, report how it went.

The daemon's pool paths are used as they are:

* ``GET /api/sessions/event/{eventId}[?target=T&lease=30s]`` takes a ready session;
* ``POST /api/sessions/{id}/usage`` with ``{"success", "status"}`` reports on it (and ends its
  lease: the daemon has no separate release call);
* ``GET /api/v1/sessions/{id}`` and ``POST /api/sessions/event/{eventId}`` for inspection and
  warming on demand.

Errors come back from the daemon as ``{"error": {"code", "message"}}``; they are raised here as
:class:`WarmerError` subclasses carrying that code, message and HTTP status.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Dict, List, Mapping, Optional, Type, Union
from urllib.parse import quote

import requests

__all__ = [
    "ANY_EVENT",
    "DEFAULT_URL",
    "Lease",
    "LeaseLike",
    "NoSessionReady",
    "NotFound",
    "Report",
    "Unauthorized",
    "WarmSession",
    "Warmer",
    "WarmerError",
    "WarmerUnavailable",
    "succeeded",
]

#: Where ``warmer serve`` listens by default.
DEFAULT_URL = "http://127.0.0.1:3000"

#: The event id sent by :meth:`Warmer.take` when no event is given. The daemon has no
#: target-wide take: it serves a session warmed on the requested event if it has one, else any
#: ready session of the target (``match == "target"``). No target lists this id, so asking for it
#: means "any ready session of the target". Without ``target=`` the daemon picks the target
#: that lists the event, else its first target; name the target when it has several.
ANY_EVENT = "_any"

#: A lease: a duration string the daemon parses (``"30s"``, ``"2m"``), seconds, or a timedelta.
LeaseLike = Union[str, int, float, _dt.timedelta]


class WarmerError(Exception):
    """The daemon answered with an error, or could not be reached.

    Attributes:
        status: the HTTP status (``None`` when no answer came back).
        code: the daemon's error code (``"no_session"``, ``"unknown_target"``, ...).
        message: the daemon's message.
        retry_after: seconds from the ``Retry-After`` header, when the daemon sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: Optional[str] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message if status is None else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class NoSessionReady(WarmerError):
    """503: no session of the target is ready (``no_session``) or all are leased or resting
    (``all_sessions_busy``). ``retry_after`` says when to ask again."""


class Unauthorized(WarmerError):
    """401: the daemon has a token and this client sent none or a wrong one."""


class NotFound(WarmerError):
    """404: unknown target, unknown session, or (when warming) an event the site does not have."""


class WarmerUnavailable(WarmerError):
    """The daemon could not be reached (connection refused, timeout)."""


def succeeded(status: int) -> bool:
    """Whether a target's HTTP ``status`` counts as a success of the session that sent it.

    Below 400 it does; so do 404 and 410 (the site accepted the session and said the page is
    not there, which is no reason to retire it). Everything else is a failure: 401/403 retire the
    session at once, 429 rests it, others add to its error score.
    """
    return status < 400 or status in (404, 410)


def _lease_param(lease: Optional[LeaseLike]) -> Optional[str]:
    if lease is None:
        return None
    if isinstance(lease, str):
        return lease
    seconds = lease.total_seconds() if isinstance(lease, _dt.timedelta) else float(lease)
    if seconds <= 0:
        raise ValueError(f"lease must be positive, got {lease!r}")
    return f"{math.ceil(seconds)}s"


def _retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Lease:
    """A lease: the session is not handed to anyone else until ``expires_at`` or a report."""

    expires_at: str
    seconds: int


@dataclass(frozen=True)
class Report:
    """The daemon's answer to a usage report."""

    session_id: str
    #: ``"keep"``, ``"back_off"`` (a 429: the session rests) or ``"retired"``.
    verdict: str
    reason: Optional[str]
    error_score: float

    @property
    def kept(self) -> bool:
        """Whether the session stays in rotation right away."""
        return self.verdict == "keep"


@dataclass
class WarmSession:
    """A warm session taken from the daemon.

    Send :attr:`headers` as they are (``Cookie``, ``User-Agent``, ``sec-ch-ua*``,
    ``Accept-Language``: the cookies are bound to that identity) through :attr:`proxy` when it is
    set, then :meth:`report` how it went. Used as a context manager it reports on exit if you
    have not: a success when the block ends normally, a failure when it raises.
    """

    id: str
    target: str
    event: Optional[str]
    headers: Dict[str, str]
    cookies: List[Dict[str, Any]]
    proxy: Optional[str]
    fingerprint: Dict[str, Any]
    expires_at: str
    #: ``"event"`` when it was warmed on the requested event, ``"target"`` otherwise.
    match: str
    lease: Optional[Lease]
    #: The daemon's whole answer.
    raw: Dict[str, Any] = field(repr=False)
    _warmer: Optional["Warmer"] = field(default=None, repr=False, compare=False)
    #: The answer to the last report, once reported.
    last_report: Optional[Report] = field(default=None, compare=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], warmer: Optional["Warmer"] = None) -> "WarmSession":
        """Builds a session from the daemon's JSON answer."""
        lease = body.get("lease")
        return cls(
            id=str(body["session_id"]),
            target=str(body.get("target", "")),
            event=body.get("event"),
            headers=dict(body.get("headers") or {}),
            cookies=list(body.get("cookies") or []),
            proxy=body.get("proxy"),
            fingerprint=dict(body.get("fingerprint") or {}),
            expires_at=str(body.get("expires_at", "")),
            match=str(body.get("match", "event")),
            lease=Lease(str(lease["expires_at"]), int(lease["seconds"])) if lease else None,
            raw=dict(body),
            _warmer=warmer,
        )

    @property
    def user_agent(self) -> str:
        """The User-Agent the cookies were earned with."""
        return self.headers.get("User-Agent", "")

    @property
    def proxies(self) -> Dict[str, str]:
        """``proxies=`` for requests: the session's proxy for http and https (empty if none)."""
        return {"http": self.proxy, "https": self.proxy} if self.proxy else {}

    @property
    def reported(self) -> bool:
        """Whether this session has been reported on."""
        return self.last_report is not None

    def report(self, success: bool, status: Optional[int] = None) -> Report:
        """Reports how the session did (``status``: the HTTP status the target answered).

        This also ends the session's lease.
        """
        if self._warmer is None:
            raise RuntimeError("this session has no Warmer to report to")
        self.last_report = self._warmer.report(self.id, success, status)
        return self.last_report

    def report_status(self, status: int) -> Report:
        """Reports a response's status, deciding success with :func:`succeeded`."""
        return self.report(succeeded(status), status)

    def apply(self, session: Optional[requests.Session] = None) -> requests.Session:
        """Puts this session's headers and proxy on a ``requests.Session`` (a new one if none).

        Nothing is reported for you; see :class:`session_warmer.requests_helper.WarmedSession`
        for a session that reports and replaces itself.
        """
        s = session if session is not None else requests.Session()
        s.headers.update(self.headers)
        if self.proxy:
            s.proxies.update(self.proxies)
        return s

    def __enter__(self) -> "WarmSession":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self.reported:
            return
        try:
            self.report(exc is None)
        except WarmerError:
            if exc is None:
                raise
            # Do not hide the block's own exception behind a failed report.


class Warmer:
    """A client of one session-warmer daemon.

    Args:
        url: the daemon's API address, e.g. ``http://127.0.0.1:3000``.
        token: the bearer token, when the daemon has one (``WARMER_TOKEN`` on its side). Proxy
            credentials are only given to callers with the token.
        timeout: seconds for each call to the daemon.
        wait: default for :meth:`take`'s ``wait``: seconds to keep asking while no session is
            ready (0: raise :class:`NoSessionReady` at once).

    A ``Warmer`` may be shared between threads (each thread gets its own HTTP connection pool).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        wait: float = 0.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.wait = wait
        self._local = threading.local()
        #: Called with the seconds about to be slept while waiting for a session (tests, logs).
        self.on_wait: Optional[Callable[[float, NoSessionReady], None]] = None

    @classmethod
    def from_env(cls, **kwargs: Any) -> "Warmer":
        """A client for ``$WARMER_URL`` (default :data:`DEFAULT_URL`) with ``$WARMER_TOKEN``."""
        return cls(
            os.environ.get("WARMER_URL") or DEFAULT_URL,
            os.environ.get("WARMER_TOKEN") or None,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"Warmer({self.url!r}, token={'***' if self.token else None})"

    # -- plumbing ---------------------------------------------------------------------------

    def _http(self) -> requests.Session:
        s: Optional[requests.Session] = getattr(self._local, "http", None)
        if s is None:
            s = requests.Session()
            # The daemon is called directly: no proxy from the environment in between.
            s.trust_env = False
            self._local.http = s
        return s

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, str]] = None,
        json: Optional[Any] = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            r = self._http().request(
                method,
                self.url + path,
                params=params,
                json=json,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as e:
            raise WarmerUnavailable(f"{method} {self.url}{path}: {e}") from e
        if r.status_code < 400:
            return r.json() if r.content else None
        try:
            err = r.json()["error"]
            code, message = str(err["code"]), str(err["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", r.text[:200]
        kind: Type[WarmerError] = {
            401: Unauthorized,
            404: NotFound,
            503: NoSessionReady,
        }.get(r.status_code, WarmerError)
        if r.status_code == 503 and code not in ("no_session", "all_sessions_busy"):
            kind = WarmerError  # e.g. shutting_down, a browser gone while warming
        raise kind(
            message,
            status=r.status_code,
            code=code,
            retry_after=_retry_after(r.headers.get("Retry-After")),
        )

    # -- the scraper's loop -----------------------------------------------------------------

    def take(
        self,
        event: Optional[str] = None,
        target: Optional[str] = None,
        lease: Optional[LeaseLike] = None,
        *,
        wait: Optional[float] = None,
    ) -> WarmSession:
        """Takes a ready session.

        Args:
            event: the event you are about to scrape; a session warmed on it is preferred, else
                any ready session of the target is served. ``None``: any ready session of the
                target (see :data:`ANY_EVENT`).
            target: the target's name (needed when the daemon has several and the event is not
                listed by the one you mean).
            lease: keep the session exclusive to you for this long (at most 10 minutes), or
                until you report on it, whichever comes first.
            wait: seconds to keep asking while the daemon answers 503 (none ready, all busy),
                sleeping as its ``Retry-After`` says (never past the deadline). Default: the
                client's ``wait``.

        Raises:
            NoSessionReady: none became ready in time.
            Unauthorized, NotFound, WarmerUnavailable, WarmerError: as the names say.
        """
        path = "/api/sessions/event/" + quote(event if event is not None else ANY_EVENT, safe="")
        params: Dict[str, str] = {}
        if target is not None:
            params["target"] = target
        lease_text = _lease_param(lease)
        if lease_text is not None:
            params["lease"] = lease_text
        budget = self.wait if wait is None else wait
        deadline = time.monotonic() + max(0.0, budget)
        while True:
            try:
                return WarmSession.from_json(self._call("GET", path, params=params), self)
            except NoSessionReady as e:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                pause = min(e.retry_after if e.retry_after is not None else 1.0, left)
                pause = max(pause, 0.05)
                if self.on_wait is not None:
                    self.on_wait(pause, e)
                time.sleep(pause)

    def report(self, session_id: str, success: bool, status: Optional[int] = None) -> Report:
        """Reports on a session: ``success``, and the HTTP ``status`` the target answered.

        The pool learns from it (a success lowers the error score, a failure raises it, 401/403
        retire the session, 429 rests it) and the session's lease ends.
        """
        body: Dict[str, Any] = {"success": bool(success)}
        if status is not None:
            body["status"] = int(status)
        out = self._call("POST", f"/api/sessions/{quote(session_id, safe='')}/usage", json=body)
        return Report(
            session_id=str(out["session_id"]),
            verdict=str(out["verdict"]),
            reason=out.get("reason"),
            error_score=float(out.get("error_score") or 0.0),
        )

    # -- the rest ---------------------------------------------------------------------------

    def warm(self, event: str, target: Optional[str] = None) -> WarmSession:
        """Warms a new session on ``event`` now and returns it (waits for the browser)."""
        params = {"target": target} if target is not None else None
        body = self._call("POST", "/api/sessions/event/" + quote(event, safe=""), params=params)
        return WarmSession.from_json(body, self)

    def session_info(self, session_id: str) -> Dict[str, Any]:
        """A session's record (``GET /api/v1/sessions/{id}``): state, uses, successes,
        failures, error_score, retired_reason, cookies without values, ..."""
        out: Dict[str, Any] = self._call("GET", f"/api/v1/sessions/{quote(session_id, safe='')}")
        return out

    def active(self) -> List[Dict[str, Any]]:
        """The sessions being served (``GET /api/sessions/active``), without cookie values."""
        out: List[Dict[str, Any]] = self._call("GET", "/api/sessions/active")
        return out

    def stats(self) -> Dict[str, Any]:
        """Pool statistics (``GET /api/sessions/stats``)."""
        out: Dict[str, Any] = self._call("GET", "/api/sessions/stats")
        return out
