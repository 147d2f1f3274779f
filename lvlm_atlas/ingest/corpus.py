"""Load catalog papers for training and evaluation, one file at a time, so one bad file is reported, not fatal."""
from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from lvlm_atlas.catalog.models import Paper
from lvlm_atlas.catalog.taxonomy import Taxonomy


def load_papers(dirs: Iterable[Path], taxonomy: Taxonomy, warn=None) -> list[Paper]:
    """Validated papers from the YAML files in `dirs` (first occurrence of an id wins), sorted by id."""
    warn = warn or (lambda msg: print(msg, file=sys.stderr))
    papers: dict[str, Paper] = {}
    for d in dirs:
        for path in sorted(Path(d).glob("*.yaml")):
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                paper = Paper.model_validate(data, context={"taxonomy": taxonomy})
            except (yaml.YAMLError, ValidationError, TypeError) as exc:
                warn(f"skipping {path}: {str(exc).splitlines()[0]}")
                continue
            papers.setdefault(paper.id, paper)
    return [papers[k] for k in sorted(papers)]
