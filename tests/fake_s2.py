"""A scripted local HTTP server that answers like the Semantic Scholar Graph API.

Tests point the real client (the `semanticscholar` package over httpx) at it, so every request goes
over a real socket and the package's own status handling and parsing run. The package uses httpx,
which the `responses` library (requests only) cannot intercept; a local server tests at the same HTTP
level without patching anything.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: object = None          # JSON-encoded unless it is a str (sent raw)
    delay: float = 0.0           # seconds to wait before answering (for timeouts)


@dataclass
class Seen:
    method: str
    path: str
    query: dict
    headers: dict
    body: object


@dataclass
class FakeS2:
    """routes: (method, path) -> replies consumed in order; the last one keeps answering."""

    routes: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)
    url: str = ""

    def on(self, method: str, path: str, *replies: Reply) -> "FakeS2":
        self.routes.setdefault((method, path), []).extend(replies)
        return self

    def seen(self, path_part: str) -> list[Seen]:
        return [r for r in self.requests if path_part in r.path]


def _handler(fake: FakeS2):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def _serve(self, method: str):
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            seen = Seen(method, parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()},
                        json.loads(raw) if raw else None)
            fake.requests.append(seen)
            queue = fake.routes.get((method, parts.path))
            if not queue:
                reply = Reply(404, {"error": f"no route for {method} {parts.path}"})
            else:
                reply = queue.pop(0) if len(queue) > 1 else queue[0]
            if callable(reply):
                reply = reply(seen)
            if reply.delay:
                time.sleep(reply.delay)
            body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            data = body.encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

    return Handler


class running:
    """Context manager: serve a FakeS2 on 127.0.0.1 (free port) and stop it afterwards."""

    def __init__(self, fake: FakeS2):
        self.fake = fake

    def __enter__(self) -> FakeS2:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.fake))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.fake.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self.fake

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def s2_paper(pid: str, *, arxiv: str | None = None, doi: str | None = None, citations: int = 0,
             influential: int = 0, references: int = 0, venue: str = "arXiv.org", year: int = 2024,
             title: str = "A paper") -> dict:
    """A batch-endpoint entry shaped like the real API's JSON."""
    ext = {"CorpusId": int(pid[:6], 16)}
    if arxiv:
        ext["ArXiv"] = arxiv
    if doi:
        ext["DOI"] = doi
    return {
        "paperId": pid, "externalIds": ext, "title": title, "venue": venue,
        "publicationVenue": {"id": "1901e811-ee72-4b20-8f7e-de08cd395a10", "name": venue, "type": "journal",
                             "alternate_names": ["ArXiv"], "url": "https://arxiv.org"} if venue else None,
        "journal": {"name": "ArXiv", "volume": f"abs/{arxiv}"} if arxiv else None,
        "year": year, "publicationDate": f"{year}-03-11", "publicationTypes": ["JournalArticle"],
        "citationCount": citations, "influentialCitationCount": influential, "referenceCount": references,
    }


def ref_item(pid: str | None, **external) -> dict:
    """A references-endpoint entry; pid None is a reference S2 could not resolve to a paper."""
    return {"citedPaper": {"paperId": pid, "externalIds": (external or None) if pid else None,
                           "title": "Cited work"}}


def ref_page(items: list[dict], offset: int, next_offset: int | None) -> dict:
    page = {"offset": offset, "data": items}
    if next_offset is not None:
        page["next"] = next_offset
    return page


def batch_answering(known: dict[str, dict]):
    """A batch route that answers like the API: one entry per requested id, in order, null if unknown."""
    def reply(seen: Seen) -> Reply:
        return Reply(200, [known.get(i) for i in seen.body["ids"]])
    return reply
