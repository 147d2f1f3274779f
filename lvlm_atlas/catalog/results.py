"""Paper-reported results: `catalog/results/<paper-id>.yaml`, one file per paper the numbers are read from.

Every number carries its provenance (the paper version and the table or figure) and its setting
(visual tokens kept, a retention ratio, a KV budget, for KV-cache quantization the bits per cached
element, or, where a paper states its budget only so, the share of the unpruned model's FLOPs). Models and benchmarks come from `catalog/results-vocab.yaml`, which also gives each benchmark's
metric and range.

    paper: visionzip                 # catalog id of the paper the numbers are read from (= file name)
    version: arXiv v2                # the version read: "arXiv vN" or e.g. "CVPR 2025 proceedings"
    url: https://arxiv.org/abs/2412.04467v2
    note: POPE is F1.               # optional, applies to every table
    tables:
      - source: Table 1              # table or figure in that version
        model: llava-1.5-7b          # a key of results-vocab.yaml `models`
        rows:
          - method: unpruned         # "unpruned" (the full model), or a catalog paper id
            role: unpruned           # unpruned | own (the paper's method) | baseline (a method it re-ran)
            setting: {visual_tokens: 576}
            scores: {gqa: 61.9, mme: 1862}
          - method: visionzip
            role: own
            variant: null            # optional, e.g. "fine-tuned"
            setting: {visual_tokens: 64}
            scores: {gqa: 55.1}
            hardware: null           # for speed rows, e.g. "1x A100-80GB"

`python -m lvlm_atlas.catalog.results [DIR]` checks the files (also part of `atlas validate`).
"""
from __future__ import annotations

import sys
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lvlm_atlas import paths
from lvlm_atlas.catalog.yamlsafe import read_yaml

RESULTS_DIR = paths.CATALOG / "results"
VOCAB_PATH = paths.CATALOG / "results-vocab.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setting(_Strict):
    visual_tokens: int | None = Field(default=None, ge=1, description="visual tokens the LLM sees")
    retention: float | None = Field(default=None, gt=0, le=1, description="share of visual tokens kept")
    kv_budget: float | None = Field(default=None, gt=0, le=1, description="share of the KV cache kept")
    kv_tokens: int | None = Field(default=None, ge=1, description="KV entries kept per layer/head")
    kv_bits: float | None = Field(default=None, gt=0, le=32,
                                  description="bits per cached key/value element (KV-cache quantization; mean of key and value widths)")
    flops_ratio: float | None = Field(default=None, gt=0, le=1,
                                      description="the pruned model's FLOPs as a share of the unpruned model's, "
                                                  "for papers that state their budget only that way")
    frames: int | None = Field(default=None, ge=1, description="video frames sampled")

    @model_validator(mode="after")
    def _one_given(self):
        if all(v is None for v in (self.visual_tokens, self.retention, self.kv_budget, self.kv_tokens, self.kv_bits,
                                      self.flops_ratio)):
            raise ValueError("give the setting: visual_tokens, retention, kv_budget, kv_tokens, kv_bits or flops_ratio")
        return self


class Row(_Strict):
    method: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    role: Literal["unpruned", "own", "baseline"]
    variant: str | None = None
    setting: Setting
    scores: dict[str, float] = Field(min_length=1)
    hardware: str | None = None

    @model_validator(mode="after")
    def _roles(self):
        if (self.method == "unpruned") != (self.role == "unpruned"):
            raise ValueError("method: unpruned goes with role: unpruned (and only with it)")
        return self


class Table(_Strict):
    source: str = Field(pattern=r"^(Table|Figure|Tab\.|Fig\.) ?[A-Za-z0-9.()-]+", description="e.g. Table 1")
    model: str
    rows: list[Row] = Field(min_length=1)


class ResultsFile(_Strict):
    paper: str
    version: str = Field(min_length=4)
    url: str = Field(pattern=r"^https://")
    note: str | None = None
    tables: list[Table] = Field(min_length=1)


def _read_strict(path: Path):
    """The file's data, read like the paper files: a duplicate key, an anchor or a tab is an error.

    Raises ValueError with one line 'line L, column C: what (what to do)'.
    """
    parsed = read_yaml(path.read_bytes(), locate=False)
    if parsed.problems:
        p = parsed.problems[0]
        raise ValueError(f"line {p.line}, column {p.col}: {p.message}" + (f" ({p.hint})" if p.hint else ""))
    return parsed.data


@cache
def load_vocab(path: Path = VOCAB_PATH) -> dict:
    data = _read_strict(path) if path.is_file() else {}
    return {"models": dict(data.get("models") or {}), "benchmarks": dict(data.get("benchmarks") or {})}


def check_file(path: Path, paper_ids: set[str] | None = None, vocab: dict | None = None) -> tuple[ResultsFile | None, list[str]]:
    """The parsed file and its problems, each one line 'path: where: what (what to write instead)'."""
    vocab = vocab or load_vocab()
    try:
        data = _read_strict(path)
    except OSError as exc:
        return None, [f"{path}: not readable ({exc})"]
    except ValueError as exc:
        return None, [f"{path}: {exc}"]
    try:
        rf = ResultsFile.model_validate(data)
    except ValidationError as exc:
        return None, [f"{path}: {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
    problems = []
    if rf.paper != path.stem:
        problems.append(f"{path}: paper: {rf.paper!r} must equal the file name; write paper: {path.stem}")
    if paper_ids is not None and rf.paper not in paper_ids:
        problems.append(f"{path}: paper: {rf.paper!r} is not a catalog id; add catalog/papers/{rf.paper}.yaml first")
    seen = set()
    for ti, table in enumerate(rf.tables):
        where = f"{path}: tables[{ti}] ({table.source})"
        if table.model not in vocab["models"]:
            problems.append(f"{where}: unknown model {table.model!r}; use one of {', '.join(vocab['models'])} "
                            "or add it to catalog/results-vocab.yaml")
        for ri, row in enumerate(table.rows):
            rw = f"{where} rows[{ri}]"
            if paper_ids is not None and row.method != "unpruned" and row.method not in paper_ids:
                problems.append(f"{rw}: method {row.method!r} is not a catalog paper id; write its id or add the paper")
            if row.role == "own" and row.method != rf.paper and row.variant is None:
                problems.append(f"{rw}: role own is for the paper's own method ({rf.paper}); use role: baseline")
            for bench, value in row.scores.items():
                spec = vocab["benchmarks"].get(bench)
                if spec is None:
                    problems.append(f"{rw}: unknown benchmark {bench!r}; use a key of catalog/results-vocab.yaml benchmarks")
                elif not spec["min"] <= value <= spec["max"]:
                    problems.append(f"{rw}: {bench} = {value} outside {spec['min']}..{spec['max']} ({spec['metric']})")
            key = (table.source, table.model, row.method, row.variant, row.setting)
            if key in seen:
                problems.append(f"{rw}: duplicate row (same table, model, method, variant and setting)")
            seen.add(key)
    return rf, problems


def load_results(results_dir: Path = RESULTS_DIR, paper_ids: set[str] | None = None) -> tuple[list[ResultsFile], list[str]]:
    files, problems = [], []
    if not results_dir.is_dir():
        return files, problems
    files_here = sorted(results_dir.glob("*.yaml"))
    vocab_path = results_dir.parent / "results-vocab.yaml"
    if files_here and not vocab_path.is_file():
        return files, [f"{vocab_path}: missing; it defines the models and benchmarks results files may use (restore it)"]
    try:
        vocab = load_vocab(vocab_path)
    except ValueError as exc:
        return files, [f"{vocab_path}: {exc}"]
    for path in files_here:
        rf, probs = check_file(path, paper_ids, vocab)
        problems += probs
        if rf is not None and not probs:
            files.append(rf)
    return files, problems


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = Path(argv[0]) if argv else RESULTS_DIR
    ids = {p.stem for p in paths.PAPERS.glob("*.yaml")}
    files, problems = load_results(folder, ids)
    for p in problems:
        print(p)
    rows = sum(len(t.rows) for f in files for t in f.tables)
    print(f"{len(files)} results file(s), {rows} row(s), {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())


def comparisons(files: list[ResultsFile]) -> set[tuple[str, str]]:
    """(paper, compared method's paper): each method a paper re-ran as a baseline in its reported tables."""
    return {(f.paper, r.method) for f in files for t in f.tables for r in t.rows
            if r.role == "baseline" and r.method not in (f.paper, "unpruned")}
