"""The committed enrichment file, catalog/enrichment/semantic_scholar.json.

Written deterministically (sorted keys, fixed indentation, trailing newline) and atomically (temp file
in the same folder + os.replace), so a crash never leaves a half-written file and the same data always
gives the same bytes. `load_store` checks the structure and says what is wrong and how to recover.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lvlm_atlas import paths

SCHEMA = 1
ENRICHMENT_DIR = paths.CATALOG / "enrichment"
STORE_PATH = ENRICHMENT_DIR / "semantic_scholar.json"
SUGGESTIONS_PATH = ENRICHMENT_DIR / "suggestions.md"
SOURCE = "Semantic Scholar Academic Graph API, https://api.semanticscholar.org/graph/v1"

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_COUNT_KEYS = ("citation_count", "influential_citation_count", "reference_count")


class StoreError(Exception):
    pass


@dataclass
class Store:
    papers: dict[str, dict] = field(default_factory=dict)     # catalog id -> record
    not_found: dict[str, str] = field(default_factory=dict)   # catalog id -> the id S2 did not know
    failed: dict[str, str] = field(default_factory=dict)      # catalog id -> why its references failed (retried)

    def to_json(self) -> str:
        doc = {"schema": SCHEMA, "source": SOURCE, "papers": self.papers, "not_found": self.not_found}
        if self.failed:  # only present while something failed, so healthy runs keep the same bytes
            doc["failed"] = self.failed
        return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def atomic_write_text(path: Path, text: str) -> bool:
    """Replace `path` with `text` atomically; returns False (and writes nothing) if unchanged."""
    path = Path(path)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def check_record(pid: str, rec) -> list[str]:
    where = f"papers.{pid}"
    if not isinstance(rec, dict):
        return [f"{where} is not an object"]
    problems = []
    if not isinstance(rec.get("s2_id"), str) or not re.fullmatch(r"[0-9a-f]{40}", rec["s2_id"]):
        problems.append(f"{where}.s2_id must be a 40-hex Semantic Scholar id")
    if not isinstance(rec.get("query"), str) or not rec["query"]:
        problems.append(f"{where}.query must be the id the paper was looked up by")
    for key in _COUNT_KEYS:
        v = rec.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            problems.append(f"{where}.{key} must be a non-negative integer or null")
    refs = rec.get("references")
    if not isinstance(refs, dict) or set(refs) != {"catalog", "external"} or not all(
            isinstance(refs[k], list) and all(isinstance(x, str) for x in refs[k]) for k in refs):
        problems.append(f"{where}.references must be {{catalog: [ids], external: [ids]}}")
    if not isinstance(rec.get("fetched"), str) or not _DATE_RE.match(rec["fetched"]):
        problems.append(f"{where}.fetched must be a YYYY-MM-DD date")
    return problems


def parse_store(text: str, origin: str = "enrichment file") -> Store:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{origin} is not valid JSON ({exc}); restore it with `git checkout -- {origin}`") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise StoreError(f"{origin}: expected an object with \"schema\": {SCHEMA}")
    papers, not_found = doc.get("papers"), doc.get("not_found")
    if not isinstance(papers, dict) or not isinstance(not_found, dict):
        raise StoreError(f"{origin}: \"papers\" and \"not_found\" must be objects")
    problems = [p for pid, rec in papers.items() for p in check_record(pid, rec)]
    problems += [f"not_found.{k} must be a string" for k, v in not_found.items() if not isinstance(v, str)]
    failed = doc.get("failed", {})
    if not isinstance(failed, dict) or not all(isinstance(v, str) for v in failed.values()):
        problems.append("\"failed\" must map catalog ids to messages")
    if problems:
        raise StoreError(f"{origin} is invalid:\n  " + "\n  ".join(problems))
    return Store(papers=papers, not_found=not_found, failed=failed)


def load_store(path: Path = STORE_PATH) -> Store:
    """The stored enrichment; an empty store if the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        return Store()
    return parse_store(path.read_text(encoding="utf-8"), str(path))


def save_store(store: Store, path: Path = STORE_PATH) -> bool:
    return atomic_write_text(Path(path), store.to_json())
