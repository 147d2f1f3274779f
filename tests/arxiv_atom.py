"""Build arXiv API responses (Atom 1.0 with the opensearch and arxiv namespaces, as export.arxiv.org
returns them) and serve them through `responses`, so the real `arxiv` client parses them.
The entries used by the tests are synthetic; the XML layout follows the API's documented format."""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

API = "https://export.arxiv.org/api/query"

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <id>https://arxiv.org/api/Xq2uU3yq3wO2bC0y0l3mPq7a9Zk</id>
  <title>arXiv Query: {title}</title>
  <updated>2026-11-21T00:00:00Z</updated>
  <link href="https://arxiv.org/api/query?{query}" type="application/atom+xml"/>
  <opensearch:itemsPerPage>{per_page}</opensearch:itemsPerPage>
  <opensearch:totalResults>{total}</opensearch:totalResults>
  <opensearch:startIndex>{start}</opensearch:startIndex>
"""


@dataclass
class Entry:
    id: str                      # with version, e.g. 2611.01234v2 or cs/0601001v1
    title: str
    abstract: str
    authors: list[str] = field(default_factory=lambda: ["Ada Example", "Ben Sample"])
    published: str = "2026-11-18T17:59:01Z"
    updated: str | None = None
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    categories: list[str] = field(default_factory=lambda: ["cs.CV", "cs.CL"])

    def xml(self) -> str:
        cats = "".join(f'    <category term="{c}" scheme="http://arxiv.org/schemas/atom"/>\n' for c in self.categories)
        authors = "".join(f"    <author>\n      <name>{escape(a)}</name>\n    </author>\n" for a in self.authors)
        extra = ""
        if self.comment:
            extra += f"    <arxiv:comment>{escape(self.comment)}</arxiv:comment>\n"
        if self.journal_ref:
            extra += f"    <arxiv:journal_ref>{escape(self.journal_ref)}</arxiv:journal_ref>\n"
        if self.doi:
            extra += (f'    <link href="https://doi.org/{self.doi}" rel="related" title="doi"/>\n'
                      f"    <arxiv:doi>{escape(self.doi)}</arxiv:doi>\n")
        # arXiv wraps long titles and abstracts over several lines with leading spaces
        return (
            "  <entry>\n"
            f"    <id>http://arxiv.org/abs/{self.id}</id>\n"
            f"    <title>{escape(self.title)}</title>\n"
            f"    <updated>{self.updated or self.published}</updated>\n"
            f'    <link href="https://arxiv.org/abs/{self.id}" rel="alternate" type="text/html"/>\n'
            f'    <link href="https://arxiv.org/pdf/{self.id}" rel="related" type="application/pdf" title="pdf"/>\n'
            f"    <summary>  {escape(self.abstract)}\n</summary>\n"
            f"{cats}"
            f"    <published>{self.published}</published>\n"
            f"{extra}"
            f'    <arxiv:primary_category term="{self.categories[0]}"/>\n'
            f"{authors}"
            "  </entry>\n"
        )


def feed(entries: list[Entry], total: int | None = None, start: int = 0, query: str = "q") -> bytes:
    head = HEAD.format(title=escape(query), query=escape(urllib.parse.quote(query)), per_page=len(entries),
                       total=len(entries) if total is None else total, start=start)
    return (head + "".join(e.xml() for e in entries) + "</feed>\n").encode()


def error_feed(message: str = "incorrect id format for 1234") -> bytes:
    anchor = message.replace(" ", "_")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
  <link href="http://arxiv.org/api/query?search_query=&amp;id_list=1234" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=&amp;id_list=1234</title>
  <id>http://arxiv.org/api/kvuntZ8c9a4Eq5CF7KY03nMug+Q</id>
  <updated>2026-11-21T00:00:00-05:00</updated>
  <opensearch:totalResults>1</opensearch:totalResults>
  <opensearch:startIndex>0</opensearch:startIndex>
  <opensearch:itemsPerPage>1</opensearch:itemsPerPage>
  <entry>
    <id>http://arxiv.org/api/errors#{anchor}</id>
    <title>Error</title>
    <summary>{escape(message)}</summary>
    <updated>2026-11-21T00:00:00-05:00</updated>
    <link href="http://arxiv.org/api/errors#{anchor}" rel="alternate" type="text/html"/>
    <author>
      <name>arXiv api core</name>
    </author>
  </entry>
</feed>
""".encode()


def params(request) -> dict[str, str]:
    q = urllib.parse.urlsplit(request.url).query
    return {k: v[0] for k, v in urllib.parse.parse_qs(q, keep_blank_values=True).items()}


class FakeArxiv:
    """A `responses` callback that pages through result lists like the arXiv API.

    `route(search_query) -> list[Entry]` chooses the results; `script` holds responses served first,
    one per request, as (status, body, headers) or an Exception to raise (e.g. a timeout).
    """

    def __init__(self, route, script=None) -> None:
        self.route = route
        self.script = list(script or [])
        self.calls: list[dict[str, str]] = []

    def __call__(self, request):
        p = params(request)
        self.calls.append(p)
        if self.script:
            item = self.script.pop(0)
            if isinstance(item, Exception):
                raise item
            if item is not None:
                return item
        if p.get("id_list"):
            wanted = p["id_list"].split(",")
            entries = [e for e in self.route("") if e.id.rsplit("v", 1)[0] in wanted or e.id in wanted]
        else:
            entries = self.route(p.get("search_query", ""))
        start, size = int(p.get("start", 0)), int(p.get("max_results", 10))
        return 200, {"Content-Type": "application/atom+xml"}, feed(entries[start:start + size], total=len(entries),
                                                                   start=start, query=p.get("search_query", ""))
