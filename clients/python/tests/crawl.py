"""A real Scrapy crawl with SessionWarmerMiddleware, run by test_scrapy.py in a subprocess
(Twisted's reactor starts once per process).

    python3 crawl.py OUT.json URL [URL ...]

Settings come from the environment: WARMER_URL, WARMER_TOKEN, CRAWL_TARGET. Writes
``{"items": [...], "stats": {...}}`` to OUT.json: one item per response reaching the spider
(every status is let through), with the session the middleware used.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, Iterator, List

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response


class EventSpider(scrapy.Spider):
    name = "events"
    custom_settings = {"HTTPERROR_ALLOW_ALL": True}

    def __init__(self, urls: List[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.start_urls = urls
        self.items: List[Dict[str, Any]] = []

    def parse(self, response: Response) -> Iterator[Dict[str, Any]]:
        body: Dict[str, Any] = {}
        if response.headers.get("Content-Type", b"").startswith(b"application/json"):
            body = json.loads(response.text)
        item = {
            "url": response.url,
            "status": response.status,
            "event": body.get("event"),
            "session_id": response.meta.get("session_warmer_session_id"),
            "match": response.meta.get("session_warmer_match"),
            "retried": bool(response.meta.get("session_warmer_retried")),
            "proxy": response.meta.get("proxy"),
            "user_agent": response.request.headers.get("User-Agent", b"").decode(),
        }
        self.items.append(item)
        yield item


def main() -> None:
    out, urls = sys.argv[1], sys.argv[2:]
    settings = {
        "DOWNLOADER_MIDDLEWARES": {"session_warmer.scrapy.SessionWarmerMiddleware": 725},
        "SESSION_WARMER_URL": os.environ["WARMER_URL"],
        "SESSION_WARMER_TOKEN": os.environ["WARMER_TOKEN"],
        "SESSION_WARMER_TARGET": os.environ["CRAWL_TARGET"],
        "SESSION_WARMER_WAIT": 60,
        "TELNETCONSOLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "RETRY_ENABLED": False,
        "CONCURRENT_REQUESTS": 4,
        "LOG_LEVEL": "INFO",
        "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    }
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(EventSpider)
    process.crawl(crawler, urls=urls)
    process.start()
    spider = crawler.spider
    stats = {k: v for k, v in crawler.stats.get_stats().items() if isinstance(v, (int, str))}
    with open(out, "w") as f:
        json.dump({"items": spider.items, "stats": stats}, f)


if __name__ == "__main__":
    main()
