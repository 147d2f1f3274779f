"""The Markdown report of a run, used as the pull-request body. Text from arXiv is escaped."""
from __future__ import annotations

import html
import re

from lvlm_atlas.catalog.taxonomy import Taxonomy
from lvlm_atlas.ingest.pipeline import RunResult

MAX_LISTED = 50
MAX_TABLE_ROWS = 80     # GitHub caps a PR body at 65,536 characters; every file is in the PR anyway


def md(text: str) -> str:
    """Inert Markdown/HTML: escape HTML, table pipes, emphasis and mention/reference triggers."""
    text = html.escape(re.sub(r"\s+", " ", text or ""), quote=False)
    return re.sub(r"([\\`*_\[\]|@#~])", r"\\\1", text)


def render_report(result: RunResult, taxonomy: Taxonomy) -> str:
    r = result
    lines = [
        f"## arXiv ingestion: {r.since} to {r.until}",
        "",
        f"- queries run: {r.queries_done} of {r.queries_total}",
        f"- results fetched: {r.fetched}",
        f"- written (new candidates): **{len(r.candidates)}**",
        f"- duplicate (already known: catalog, earlier candidates, rejected, or repeated across queries): {len(r.duplicates)}",
        f"- skipped: {r.skipped} (off-topic {len(r.off_topic)}, withdrawn {len(r.withdrawn)}, "
        f"outside the date window {len(r.out_of_window)})",
        f"- invalid: {r.invalid_count} (unreadable arXiv entries {len(r.bad_entries)}, "
        f"failed validation {len(r.invalid)}){' -- see below' if r.invalid_count else ''}",
    ]
    if r.capped_queries:
        lines.append(f"- queries that hit max_results_per_query (narrow the window): {', '.join(r.capped_queries)}")
    if r.errors:
        lines += ["", "### Errors", "", "The run stopped early; the candidates below were kept. Rerun later: reruns add only what is new.", ""]
        lines += [f"- {md(e)}" for e in r.errors]
    lines += ["", "### Candidates", ""]
    if not r.candidates:
        lines.append("No new candidates.")
    else:
        lines += [
            "Each is a file in `catalog/papers/` with `candidate: true`. To accept: check the placement and facets, "
            "write the one-line summary, set `source: manual` and `candidate: false`. To reject: "
            "`atlas ingest --reject ARXIV_ID --reason \"...\"` (deletes the file; never proposed again).",
            "",
            "| Candidate | Proposed placement | Confidence | Relevance | Facets | Reasons |",
            "|---|---|---|---|---|---|",
        ]
        ranked = sorted(r.candidates, key=lambda c: (-c.classification.confidence, c.id))
        for c in ranked[:MAX_TABLE_ROWS]:
            cls = c.classification
            node = taxonomy.node_by_id[cls.primary]
            facets = ", ".join(filter(None, [
                cls.kind, "/".join(cls.modality), "/".join(cls.bottleneck), "/".join(cls.granularity),
                {True: "training-free", False: "needs training", None: ""}[cls.training_free]]))
            title = f"[{md(c.record.title)}]({c.record.abs_url})"
            lines.append(
                f"| `{c.id}`<br>{title} ({c.record.published}) | {md(node.label)}<br>`{cls.primary}` "
                f"| {cls.confidence:.2f} | {c.relevance:.2f} | {md(facets)} | {md('; '.join(c.reasons))} |")
        if len(ranked) > MAX_TABLE_ROWS:
            lines += ["", f"... and {len(ranked) - MAX_TABLE_ROWS} more candidates (lowest confidence) in the changed files."]
    if r.off_topic:
        lines += ["", f"<details><summary>Judged off-topic ({len(r.off_topic)})</summary>", ""]
        for rec, rel in sorted(r.off_topic, key=lambda x: -x[1].score)[:MAX_LISTED]:
            lines.append(f"- [{md(rec.title)}]({rec.abs_url}): {md('; '.join(rel.reasons()))}")
        if len(r.off_topic) > MAX_LISTED:
            lines.append(f"- ... and {len(r.off_topic) - MAX_LISTED} more")
        lines += ["", "</details>"]
    if r.duplicates:
        lines += ["", f"<details><summary>Already known ({len(r.duplicates)})</summary>", ""]
        for s in r.duplicates[:MAX_LISTED]:
            lines.append(f"- {s.record.arxiv_id} {md(s.record.title)}: {md(s.why)}")
        if len(r.duplicates) > MAX_LISTED:
            lines.append(f"- ... and {len(r.duplicates) - MAX_LISTED} more")
        lines += ["", "</details>"]
    if r.invalid or r.bad_entries:
        lines += ["", "### Invalid (not written)", ""]
        for b in r.bad_entries:
            lines.append(f"- {md(b.ident)} {md(b.title)}: unreadable arXiv entry: {md(b.reason)}")
        for s in r.invalid:
            msg = [m for m in s.why.splitlines() if m.strip()] or ["(no message)"]
            lines.append(f"- {s.record.arxiv_id} {md(s.record.title)}: {md(msg[0])}")
            lines += [f"  - {md(m)}" for m in msg[1:]]
    if r.withdrawn:
        lines += ["", f"<details><summary>Withdrawn, not proposed ({len(r.withdrawn)})</summary>", ""]
        lines += [f"- {s.record.arxiv_id} {md(s.record.title)}: {md(s.why)}" for s in r.withdrawn[:MAX_LISTED]]
        lines += ["", "</details>"]
    if r.notes:
        lines += ["", "### Notes for reviewers", ""]
        lines += [f"- {s.record.arxiv_id} {md(s.record.title)}: {md(s.why)}" for s in r.notes]
    return "\n".join(lines) + "\n"
