"""catalog/ingest-rejected.yaml: arXiv ids a human rejected; ingestion never proposes them again."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from lvlm_atlas import paths
from lvlm_atlas.catalog.atomic import write_text_atomic as atomic_write_text
from lvlm_atlas.ingest.dedup import Known
from lvlm_atlas.ingest.record import split_arxiv_id

REJECTED_PATH = paths.CATALOG / "ingest-rejected.yaml"

HEADER = """\
# arXiv papers that a reviewer rejected as ingestion candidates. `atlas ingest` never
# proposes them again. Add one with `atlas ingest --reject ARXIV_ID --reason "..."`
# (which also deletes the candidate file) or by hand: arxiv (no version), title, reason, date.
"""


@dataclass(frozen=True)
class Rejection:
    arxiv: str
    title: str | None
    reason: str | None
    date: dt.date | None


def load_rejected(path: Path = REJECTED_PATH) -> list[Rejection]:
    if not path.exists():
        return []
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = raw.get("rejected") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a top-level 'rejected:' list")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("arxiv"):
            raise ValueError(f"{path}: rejected[{i}] needs an 'arxiv' id")
        try:
            bare, _ = split_arxiv_id(str(e["arxiv"]))
        except ValueError as exc:
            raise ValueError(f"{path}: rejected[{i}]: {exc}") from exc
        out.append(Rejection(arxiv=bare, title=e.get("title"), reason=e.get("reason"), date=e.get("date")))
    return out


def as_known(rejections: list[Rejection]) -> list[Known]:
    return [Known(label=f"rejected ({r.reason or 'no reason given'})", arxiv=r.arxiv, title=r.title)
            for r in rejections]


def add_rejection(rejection: Rejection, path: Path = REJECTED_PATH) -> bool:
    """Append a rejection (atomically); False when the id is already listed."""
    current = load_rejected(path)
    if any(r.arxiv == rejection.arxiv for r in current):
        return False
    current.append(rejection)
    entries = []
    for r in current:
        e = {"arxiv": r.arxiv}
        if r.title:
            e["title"] = r.title
        if r.reason:
            e["reason"] = r.reason
        if r.date:
            e["date"] = r.date
        entries.append(e)
    body = yaml.safe_dump({"rejected": entries}, sort_keys=False, allow_unicode=True, width=1000)
    atomic_write_text(path, HEADER + body)
    return True


def merge_rejected(other: Path, path: Path = REJECTED_PATH) -> int:
    """Add the rejections listed in `other` (e.g. the ingestion branch's copy) to `path`; returns how many."""
    added = 0
    for r in load_rejected(other):
        added += add_rejection(r, path)
    return added


def main(argv: list[str] | None = None) -> int:
    """`python -m lvlm_atlas.ingest.rejected --merge FILE`: union FILE's rejections into the catalog's list."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lvlm_atlas.ingest.rejected", description=main.__doc__)
    ap.add_argument("--merge", type=Path, required=True, metavar="FILE")
    ap.add_argument("--into", type=Path, default=REJECTED_PATH)
    args = ap.parse_args(argv)
    n = merge_rejected(args.merge, args.into)
    print(f"{n} rejection(s) added to {args.into}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
