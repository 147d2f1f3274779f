"""Recent additions page and the Atom feed (feed.xml)."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

from lvlm_atlas.site import urls
from lvlm_atlas.site.blocks import paper_list
from lvlm_atlas.site.context import RenderContext
from lvlm_atlas.site.escape import front_matter_title
from lvlm_atlas.site.registry import register_page_builder

FEED = "feed.xml"
FEED_ENTRIES = 50
PAGE_ENTRIES = 200
ATOM = "http://www.w3.org/2005/Atom"
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    """Text ElementTree can serialise as valid XML 1.0 (it escapes markup but not control characters)."""
    return _NOT_XML.sub("", str(text))


def recent_page(ctx: RenderContext) -> str:
    ctx = ctx.at("recent.md")
    papers = ctx.indexes.recent[:PAGE_ENTRIES]
    lines = ["---", front_matter_title("Recent additions"), "search:", "  exclude: true", "---", "", "# Recent additions", "",
             f"The {len(papers)} most recently added catalog entries, newest first. Subscribe with the "
             f"[Atom feed]({ctx.link(FEED)}).", ""]
    groups: dict = {}
    for p in papers:
        groups.setdefault(p.added, []).append(p)
    for day, ps in groups.items():
        lines += [f"## {day.isoformat()}", "", paper_list(ctx, ps)]
    if not papers:
        lines.append("_Nothing yet._")
    return "\n".join(lines) + "\n"


def _stamp(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def atom_feed(ctx: RenderContext) -> str:
    ET.register_namespace("", ATOM)
    papers = ctx.indexes.recent[:FEED_ENTRIES]
    base = (ctx.site_url.rstrip("/") + "/") if ctx.site_url else ""

    def link_to(md_path: str) -> str:
        return base + urls.page_url(md_path, ctx.directory_urls) if base else urls.rel_url(FEED, md_path, ctx.directory_urls)

    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}title").text = "LVLM Atlas: recent additions"
    ET.SubElement(feed, f"{{{ATOM}}}subtitle").text = "Papers newly added to the LVLM efficient-inference catalog"
    ET.SubElement(feed, f"{{{ATOM}}}id").text = (base + FEED) if base else "tag:lvlm-atlas.github.io,2026:feed"
    updated = max((p.added for p in papers), default=dt.date(2026, 1, 1))
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = _stamp(updated)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=(base + FEED) if base else FEED)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=link_to("recent.md"))
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "LVLM Atlas contributors"
    ET.SubElement(feed, f"{{{ATOM}}}generator").text = "LVLM Atlas"
    for p in papers:
        e = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(e, f"{{{ATOM}}}title").text = _x(f"{p.name}: {p.title}")
        ET.SubElement(e, f"{{{ATOM}}}id").text = f"tag:lvlm-atlas.github.io,2026:paper/{p.id}"
        ET.SubElement(e, f"{{{ATOM}}}updated").text = _stamp(p.added)
        ET.SubElement(e, f"{{{ATOM}}}published").text = _stamp(p.added)
        ET.SubElement(e, f"{{{ATOM}}}link", rel="alternate", type="text/html", href=link_to(urls.paper(p.id)))
        for name in p.authors:
            ET.SubElement(ET.SubElement(e, f"{{{ATOM}}}author"), f"{{{ATOM}}}name").text = _x(name)
        ET.SubElement(e, f"{{{ATOM}}}category", term=p.primary_node, label=_x(ctx.taxonomy.node_by_id[p.primary_node].label))
        # type="text": readers show it as plain text, never as markup.
        ET.SubElement(e, f"{{{ATOM}}}summary", type="text").text = _x(f"{p.summary} ({p.venue or 'preprint'}, {p.year})")
    ET.indent(feed)
    return ET.tostring(feed, encoding="unicode", xml_declaration=True) + "\n"


@register_page_builder
def recent_pages(ctx: RenderContext):
    yield "recent.md", recent_page(ctx)
    yield FEED, atom_feed(ctx)
