"""Validate the catalog: every file on its own, then the files against each other.

Each problem is reported as `path:line:column: message` followed by a hint of what to write instead.
Nothing here raises on bad input; `validate_catalog` returns a `Report`.
"""
from __future__ import annotations

import difflib
import functools
import multiprocessing
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lvlm_atlas import paths
from lvlm_atlas.catalog.cards import CARDS_DIR, card_names
from lvlm_atlas.catalog.models import HINT_SEP, PROBLEM_SEP, Paper
from lvlm_atlas.catalog.taxonomy import Taxonomy
from lvlm_atlas.catalog.yamlsafe import ParsedYaml, read_yaml

SCHEMA_COMMENT = "# yaml-language-server: $schema=../schema/paper.schema.json"
NEAR_DUPLICATE_RATIO = 0.93
_STOPWORDS = frozenset(
    "a an the of for and in on with via to by from is are your at as towards toward its into beyond large "
    "vision language models model multimodal efficient llms llm lvlms lvlm mllms mllm".split()
)


@dataclass(frozen=True, order=True)
class Problem:
    path: str
    line: int
    col: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.message}"
        return text + (f"\n    hint: {self.hint}" if self.hint else "")

    def github_annotation(self) -> str:
        msg = self.message + (f" (hint: {self.hint})" if self.hint else "")
        msg = msg.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        path = self.path.replace("%", "%25").replace(",", "%2C").replace(":", "%3A")
        return f"::error file={path},line={self.line},col={self.col}::{msg}"


@dataclass
class Report:
    papers: list[Paper] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def method_names(cards_dir: Path = CARDS_DIR) -> set[str]:
    """Runnable methods are those with a card in lvlm_atlas/methods/cards/<name>.yaml (readable without torch)."""
    return card_names(cards_dir)


def _display(path: Path) -> str:
    """The path as printed in messages: relative to the repository root when inside it."""
    return f"{_display_dir(path.parent)}/{path.name}" if path.name else str(path)


@functools.lru_cache(maxsize=64)
def _display_dir(directory: Path) -> str:
    try:
        return str(directory.resolve().relative_to(paths.ROOT))
    except ValueError:
        return str(directory)


# ---------------------------------------------------------------- one file

def _locate(parsed: ParsedYaml, loc: tuple) -> tuple[int, int]:
    """Line/column of the value at `loc` (a pydantic error location), or of its nearest ancestor."""
    loc = tuple(loc)
    while loc:
        if loc in parsed.positions:
            return parsed.positions[loc]
        loc = loc[:-1]
    return (2, 1)


def _model_at(loc: tuple):
    """The pydantic model class that owns the field at `loc` (for 'unknown key' hints)."""
    model: Any = Paper
    for part in loc:
        if isinstance(part, int):
            continue
        field_info = getattr(model, "model_fields", {}).get(part)
        if field_info is None:
            return model
        ann = field_info.annotation
        inner = [a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")]
        if not inner:
            for a in getattr(ann, "__args__", ()):
                inner += [b for b in getattr(a, "__args__", ()) if hasattr(b, "model_fields")]
        if not inner:
            return model
        model = inner[0]
    return model


def _narrow(parsed: ParsedYaml, loc: tuple, msg: str) -> tuple:
    """Point a list-level error ("unknown X 'v'") at the list item that holds 'v'."""
    m = re.match(r"unknown [\w ]+ '([^']*)'", msg)
    value = _get(parsed.data, loc)
    if m and isinstance(value, list):
        for i, item in enumerate(value):
            if item == m.group(1):
                return loc + (i,)
            if isinstance(item, dict) and m.group(1) in (item.get("node"),):
                return loc + (i, "node")
    return loc


def _get(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _schema_problems(err: dict, parsed: ParsedYaml, display: str) -> list[Problem]:
    """One pydantic error as problems: a value error may carry several problems (PROBLEM_SEP), each with its
    hint (HINT_SEP) and, for whole-entry checks, the key to point at ('@key ' prefix)."""
    msg = err["msg"]
    if err["type"] != "value_error" or (PROBLEM_SEP not in msg and HINT_SEP not in msg and err["loc"]):
        return [_schema_problem(err, parsed, display)]
    msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
    out = []
    for part in msg.split(PROBLEM_SEP):
        text, _, hint = part.partition(HINT_SEP)
        loc = tuple(err["loc"])
        key = text.split(" ", 1)[0]
        if not loc and hint and key in Paper.model_fields:  # a whole-entry check about one key: point at that key
            out.append(Problem(display, *parsed.positions.get((key,), (2, 1)), text, hint))
            continue
        sub = _schema_problem({**err, "msg": text, "loc": loc}, parsed, display)
        out.append(Problem(sub.path, sub.line, sub.col, sub.message, hint or sub.hint))
    return out


def _schema_problem(err: dict, parsed: ParsedYaml, display: str) -> Problem:
    loc = tuple(err["loc"])
    kind = err["type"]
    where = ".".join(str(x) for x in loc) or "(file)"
    if kind == "extra_forbidden":
        owner = _model_at(loc[:-1])
        allowed = sorted(owner.model_fields)
        key = str(loc[-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        line, col = parsed.key_positions.get(loc, _locate(parsed, loc))
        hint = (f"did you mean '{close[0]}'? " if close else "") + "allowed keys here: " + ", ".join(allowed)
        return Problem(display, line, col, f"unknown key '{where}'", hint)
    if kind == "missing":
        line, col = _locate(parsed, loc[:-1]) if len(loc) > 1 else (2, 1)
        return Problem(display, line, col, f"missing required key '{where}'",
                       f"add '{loc[-1]}:' (see catalog/papers/fastv.yaml for a complete entry)")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    line, col = _locate(parsed, _narrow(parsed, loc, msg))
    hint = ""
    if kind in ("url_parsing", "url_scheme", "url_type"):
        hint = "write an absolute http:// or https:// URL"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        hint = f"got {err.get('input')!r}"
    elif kind == "string_pattern_mismatch" and loc and loc[-1] in ("id", "builds_on") or (len(loc) > 1 and loc[0] == "builds_on"):
        hint = "ids are lowercase letters, digits and single hyphens, e.g. 'llava-prumerge'"
    elif kind == "literal_error":
        hint = "allowed: " + str(err.get("ctx", {}).get("expected", ""))
    return Problem(display, line, col, f"{where}: {msg}" if loc else msg, hint)


_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/([^/?#]+?)(?:v\d+)?(?:\.pdf)?$")


def parse_file(path: Path) -> tuple[str, Any] | None:
    """(first line, data) of a file that reads and parses without a YAML problem, else None."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    parsed = read_yaml(raw, locate=False)
    if parsed.problems:
        return None
    return raw.split(b"\n", 1)[0].decode("utf-8").strip(), parsed.data


def _unreadable(path: Path) -> list[Problem]:
    """Why `parse_file` rejected a file: the read error or the YAML problems, with their positions."""
    display = _display(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [Problem(display, 1, 1, f"cannot read file: {exc.strerror}", "check file permissions")]
    problems = [Problem(display, p.line, p.col, p.message, p.hint) for p in read_yaml(raw, locate=False).problems]
    return problems or [Problem(display, 1, 1, "file changed while it was being validated", "run the validator again")]


def check_file(path: Path, tax: Taxonomy, parsed_: tuple[str, Any] | None = None) -> tuple[Paper | None, list[Problem]]:
    """Validate one file.

    A valid file is parsed once without positions; any problem makes it parse again with positions so
    that every message points at its line and column. `parsed_` is `parse_file(path)` done elsewhere (a
    worker process); without it the file is read and parsed here.
    """
    parsed_ = parsed_ if parsed_ is not None else parse_file(path)
    if parsed_ is None:
        return None, _unreadable(path)
    first_line, data = parsed_
    problems: list[Problem] = []
    located = None

    def where(*key) -> tuple[int, int]:
        nonlocal located
        if located is None:
            located = read_yaml(path.read_bytes())
        return located.positions.get(key, (2, 1))

    if first_line != SCHEMA_COMMENT:
        problems.append(Problem(_display(path), 1, 1, "first line must reference the paper schema",
                                f"make the first line exactly: {SCHEMA_COMMENT}"))
    try:
        paper = Paper.model_validate(data, context={"taxonomy": tax})
    except ValidationError as exc:
        where()
        problems += [p for e in exc.errors(include_url=False) for p in _schema_problems(e, located, _display(path))]
        return None, sorted(problems)
    if path.stem != paper.id:
        problems.append(Problem(_display(path), *where("id"), f"id '{paper.id}' does not match the file name '{path.name}'",
                                f"rename the file to {paper.id}.yaml or set id: {path.stem}"))
    arxiv_in_url = _ARXIV_URL.search(str(paper.links.paper))
    if arxiv_in_url and paper.identifiers.arxiv and arxiv_in_url.group(1) != paper.identifiers.arxiv:
        problems.append(Problem(_display(path), *where("links", "paper"),
                                f"links.paper points to arXiv {arxiv_in_url.group(1)} but identifiers.arxiv is {paper.identifiers.arxiv}",
                                f"use https://arxiv.org/abs/{paper.identifiers.arxiv}"))
    return (None if problems else paper), problems


# ---------------------------------------------------------------- across files

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_DIGITS = re.compile(r"\d+")


def normalise_title(title: str) -> str:
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return " ".join(_NON_ALNUM.sub(" ", text).split())


# Words whose presence or absence does not make two titles different papers.
_FUNCTION_WORDS = frozenset(
    "a an the of for and in on with via to by from is are at as towards toward its into over under using "
    "based through your our their this that it be".split())


def _close_words(a: str, b: str) -> bool:
    """Spelling variants of one word: plural/suffix (model/models), -ise/-ize, a small typo."""
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    if len(short) >= 4 and long_.startswith(short) and len(long_) - len(short) <= 3:
        return True
    return len(short) >= 5 and difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= 0.85


def differ_in_content(norm_a: str, norm_b: str) -> list[str]:
    """The content words that one normalised title has and the other lacks (empty: same paper is possible).

    A word counts as shared when the other title has it, a spelling variant of it, or has it split in two
    ("visionlanguage" / "vision language"); function words never count. "DNA Language Models for ..." and
    "Genetic Language Models for ..." differ in content ("dna", "genetic") and are two papers however
    similar the strings are.
    """
    wa, wb = norm_a.split(), norm_b.split()
    joined_a = {x + y for x, y in zip(wa, wa[1:])}
    joined_b = {x + y for x, y in zip(wb, wb[1:])}
    only_a = [w for w in dict.fromkeys(wa) if w not in wb and w not in _FUNCTION_WORDS]
    only_b = [w for w in dict.fromkeys(wb) if w not in wa and w not in _FUNCTION_WORDS]
    out = []
    for words, others, others_joined, own in ((only_a, only_b, joined_b, wa), (only_b, only_a, joined_a, wb)):
        for w in words:
            if w in others_joined or any(_close_words(w, o) for o in others):
                continue
            if any((w + o) in others_joined or (o + w) in others_joined for o in own):
                continue  # "vision" next to "language" in one title, "visionlanguage" in the other
            out.append(w)
    return out


def _significant_words(norm: str) -> list[str]:
    return [w for w in norm.split() if w not in _STOPWORDS and len(w) > 2]


MAX_BLOCK = 32  # a word pair shared by more titles than this is too common to identify a paper


def near_duplicate_titles(papers: list[tuple[str, str]], ratio: float = NEAR_DUPLICATE_RATIO) -> list[tuple[str, str, float]]:
    """Pairs (id_a, id_b, similarity) of titles that are equal or nearly equal after normalisation.

    Exact duplicates (after normalisation) are found through a dictionary. For near-duplicates,
    blocking keeps the work near-linear: two titles are compared only if they share a pair among their
    four rarest significant words, one of them among the two rarest (near-duplicates share almost all
    words), that few titles share, and
    only if their word sets overlap by at least 60%. Titles whose numbers differ are never paired
    ("... Layer 2" vs "... Layer 3", "Qwen2-VL" vs "Qwen2.5-VL" are different works).
    """
    norms = {pid: normalise_title(t) for pid, t in papers}
    out: set[tuple[str, str, float]] = set()
    by_norm: dict[str, list[str]] = defaultdict(list)
    for pid, norm in norms.items():
        by_norm[norm].append(pid)
    for ids in by_norm.values():
        ids = sorted(ids)
        out.update((a, b, 1.0) for i, a in enumerate(ids) for b in ids[i + 1:])
    words = {pid: _significant_words(n) for pid, n in norms.items()}
    freq: dict[str, int] = defaultdict(int)
    for ws in words.values():
        for w in set(ws):
            freq[w] += 1
    blocks: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pid, ws in words.items():
        rare = sorted(set(ws), key=lambda w: (freq[w], w))[:4]
        for i, a in enumerate(rare[:2]):  # every key holds one of the two rarest words
            for b in rare[i + 1:]:
                blocks[(a, b) if a < b else (b, a)].append(pid)
    seen: set[tuple[str, str]] = set()
    numbers = functools.cache(lambda pid: _DIGITS.findall(norms[pid]))  # computed only for candidate pairs
    wordset = functools.cache(lambda pid: set(norms[pid].split()))
    lengths = {pid: len(n) for pid, n in norms.items()}
    for ids in blocks.values():
        if len(ids) > MAX_BLOCK:
            continue
        for i, a in enumerate(ids):
            la = lengths[a]
            for b in ids[i + 1:]:
                lb = lengths[b]
                if 2 * (la if la < lb else lb) < ratio * (la + lb):  # the similarity cannot reach `ratio`
                    continue
                pair = (a, b) if a < b else (b, a)
                if pair in seen or norms[a] == norms[b]:
                    continue
                seen.add(pair)
                if numbers(a) != numbers(b):
                    continue
                wa, wb = wordset(a), wordset(b)
                if len(wa & wb) / max(len(wa | wb), 1) < 0.6:
                    continue
                r = difflib.SequenceMatcher(None, norms[pair[0]], norms[pair[1]], autojunk=False).ratio()
                if r >= ratio and not differ_in_content(norms[a], norms[b]):
                    out.add((pair[0], pair[1], round(r, 3)))
    return sorted(out)


def check_cross(papers: list[tuple[Paper, Path]], method_names_: set[str],
                positions: dict[Path, dict] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    positions = positions or {}

    def at(path: Path, *key) -> tuple[int, int]:
        if path not in positions:  # valid files are parsed without positions: locate this one now
            try:
                positions[path] = read_yaml(path.read_bytes()).positions
            except OSError:
                positions[path] = {}
        return positions[path].get(tuple(key), (2, 1))

    by_id: dict[str, list[Path]] = defaultdict(list)
    for paper, path in papers:
        by_id[paper.id].append(path)
    for pid, files in by_id.items():
        for f in files[1:]:
            problems.append(Problem(_display(f), *at(f, "id"), f"duplicate id '{pid}' (also in {_display(files[0])})",
                                    "give each paper a unique id, e.g. append the first author's surname"))
    path_of = {p.id: path for p, path in papers}

    def dupes(key: str, field_name: str, getter) -> None:
        seen: dict[str, str] = {}
        for paper, path in papers:
            value = getter(paper)
            if not value:
                continue
            norm = value.lower()
            if norm in seen:
                problems.append(Problem(_display(path), *at(path, "identifiers", field_name),
                                        f"duplicate {key} {value} (already used by '{seen[norm]}' in {_display(path_of[seen[norm]])})",
                                        "one paper, one file: merge the two entries or fix the identifier"))
            else:
                seen[norm] = paper.id

    dupes("arXiv id", "arxiv", lambda p: p.identifiers.arxiv)
    dupes("DOI", "doi", lambda p: p.identifiers.doi)
    dupes("OpenReview id", "openreview", lambda p: p.identifiers.openreview)
    dupes("Semantic Scholar id", "semantic_scholar", lambda p: p.identifiers.semantic_scholar)

    for a, b, ratio in near_duplicate_titles([(p.id, p.title) for p, _ in papers]):
        what = "the same title" if ratio == 1.0 else f"a near-identical title ({ratio:.0%} similar)"
        problems.append(Problem(_display(path_of[b]), *at(path_of[b], "title"), f"'{b}' has {what} as '{a}'",
                                "if these are the same paper keep one file; if not, make the titles exact"))

    ids = set(by_id)
    for paper, path in papers:
        if paper.method and paper.method not in method_names_:
            known = sorted(method_names_)
            close = difflib.get_close_matches(paper.method, known, n=1)
            problems.append(Problem(_display(path), *at(path, "method"), f"method '{paper.method}' has no card lvlm_atlas/methods/cards/{paper.method}.yaml",
                                    (f"did you mean '{close[0]}'? " if close else "")
                                    + ("known methods: " + ", ".join(known) if known else "remove 'method:' until it is implemented")))
        for i, other in enumerate(paper.builds_on):
            if other not in ids:
                close = difflib.get_close_matches(other, sorted(ids), n=1)
                problems.append(Problem(_display(path), *at(path, "builds_on", i), f"builds_on '{other}' is not a catalog id",
                                        f"did you mean '{close[0]}'?" if close else "list ids of papers in catalog/papers/"))
            elif other == paper.id:
                problems.append(Problem(_display(path), *at(path, "builds_on", i), "a paper cannot build on itself", "remove its own id from builds_on"))
    return problems


# Worker processes are opt-in (`workers=N`): a forked worker parses later files (YAML parsing, the C parser
# building Python nodes, is most of the cost) and returns only the parsed plain data, cheap to pickle; the
# schema and everything else are checked here, so results and their order do not depend on workers.
# Measured on this shared 2-core machine (10,000 synthetic files): 2.6-2.8 s wall serial, 2.6-3.1 s wall
# (3.5-4.0 s CPU) with 2 workers, because the second core is rarely free here; on a machine with idle
# cores pass workers=2 or more. (Returning validated Paper objects instead cost more to pickle than the
# parallel work saved.)
DEFAULT_WORKERS = 1
_PARENT_SHARE = 0.45  # with 2 workers the parent parses and checks the first 45%; the worker parses the rest


def _parse_files(paths_: list[Path]) -> list[tuple[str, Any] | None]:
    return [parse_file(p) for p in paths_]


def _check_all(files: list[Path], tax: Taxonomy, workers: int | None):
    """Check files in order; with workers > 1, later files are parsed by worker processes meanwhile
    (same results, same order)."""
    workers = DEFAULT_WORKERS if workers is None else workers
    if workers <= 1 or len(files) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [(path, *check_file(path, tax)) for path in files]
    head = max(1, int(len(files) * _PARENT_SHARE)) if workers == 2 else max(1, len(files) // workers)
    rest = files[head:]
    size = -(-len(rest) // (workers - 1))
    chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
    with multiprocessing.get_context("fork").Pool(len(chunks)) as pool:
        pending = [pool.apply_async(_parse_files, (chunk,)) for chunk in chunks]
        results = [(path, *check_file(path, tax)) for path in files[:head]]
        for chunk, job in zip(chunks, pending):
            results += [(path, *check_file(path, tax, pre)) for path, pre in zip(chunk, job.get())]
    return results


def validate_catalog(papers_dir: Path, tax: Taxonomy, cards_dir: Path = CARDS_DIR,
                     workers: int | None = None) -> Report:
    report = Report()
    if not papers_dir.is_dir():
        report.problems.append(Problem(_display(papers_dir), 1, 1, "papers directory not found", "run from the repository root"))
        return report
    files: list[Path] = []
    for path in sorted(papers_dir.iterdir(), key=lambda p: p.name):  # one folder: name order is path order
        if path.name.startswith(".") or path.is_dir():
            continue
        report.files += 1
        if path.suffix != ".yaml":
            report.problems.append(Problem(_display(path), 1, 1, f"unexpected file '{path.name}' in catalog/papers",
                                           "paper files are named <id>.yaml (not .yml); move other files elsewhere"))
            continue
        files.append(path)
    good: list[tuple[Paper, Path]] = []
    positions: dict[Path, dict] = {}
    for path, paper, problems in _check_all(files, tax, workers):
        report.problems += problems
        if paper is not None:
            good.append((paper, path))
    report.problems += check_cross(good, method_names(cards_dir), positions)
    bad = {pr.path for pr in report.problems}
    report.papers = [p for p, path in good if _display(path) not in bad] if bad else [p for p, _ in good]
    report.problems.sort()
    return report
