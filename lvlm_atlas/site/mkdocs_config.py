"""The repository's mkdocs.yml, re-pointed at another docs folder (tests, benchmarks, previews).

Paths in mkdocs.yml are relative to the file itself; a copy written elsewhere must make the hooks and the
theme override absolute, or MkDocs cannot find them. This is the one place that knows which keys hold
such paths.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from lvlm_atlas import paths


def repo_mkdocs_config(docs_dir: Path, site_dir: Path, **overrides) -> dict:
    """mkdocs.yml as a dict with `docs_dir`/`site_dir` replaced and every repository-relative path
    (hooks, theme.custom_dir) made absolute; `overrides` are set last (e.g. `strict=False`, `site_url=...`)."""
    cfg = yaml.safe_load((paths.ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    cfg["docs_dir"], cfg["site_dir"] = str(docs_dir), str(site_dir)
    cfg["hooks"] = [str(paths.ROOT / h) for h in cfg.get("hooks", [])]
    theme = cfg.get("theme")
    if isinstance(theme, dict) and theme.get("custom_dir"):
        theme["custom_dir"] = str(paths.ROOT / theme["custom_dir"])
    cfg.update(overrides)
    return cfg


def write_repo_mkdocs_config(path: Path, docs_dir: Path, site_dir: Path, **overrides) -> Path:
    """`repo_mkdocs_config(...)` written to `path` (returned, for `mkdocs build -f`)."""
    path.write_text(yaml.safe_dump(repo_mkdocs_config(docs_dir, site_dir, **overrides), sort_keys=False),
                    encoding="utf-8")
    return path
