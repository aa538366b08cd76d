"""session_warmer: the Python client of a session-warmer daemon.

Take a warm session (headers ready to send, cookies, proxy), use it, report how it went::

    from session_warmer import Warmer

    warmer = Warmer("http://127.0.0.1:3000", token=None)
    with warmer.take(event="1001", lease="30s") as s:
        r = requests.get(url, headers=s.headers, proxies=s.proxies)
        s.report_status(r.status_code)

Also :class:`WarmedSession`, a ``requests.Session`` that does this for every request, and
:class:`session_warmer.scrapy.SessionWarmerMiddleware` for Scrapy (needs the ``scrapy`` extra).
"""

from .client import (
    ANY_EVENT,
    DEFAULT_URL,
    Lease,
    LeaseLike,
    NoSessionReady,
    NotFound,
    Report,
    Unauthorized,
    Warmer,
    WarmerError,
    WarmerUnavailable,
    WarmSession,
    succeeded,
)
from .requests_helper import WarmedSession

__version__ = "0.1.0"

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
    "WarmedSession",
    "Warmer",
    "WarmerError",
    "WarmerUnavailable",
    "succeeded",
]
