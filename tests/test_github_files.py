"""Lint every GitHub Actions workflow and issue form: the official JSON schemas (vendored in
check-jsonschema, so this runs offline) plus project rules: explicit least-privilege permissions, no
pull_request_target, actions pinned to a version, no `${{ github.event... }}` expanded inside shell
scripts (script injection), job timeouts."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
ISSUE_FORMS = sorted(p for p in (ROOT / ".github" / "ISSUE_TEMPLATE").glob("*.y*ml") if p.name != "config.yml")
# Write access is granted per job, never workflow-wide, and only for these scopes (deploying Pages;
# opening ingestion pull requests). Workflows that run on pull requests get no write access at all.
WRITE_SCOPES_ALLOWED = {"pages", "id-token", "contents", "pull-requests", "issues"}


def _load(path: Path) -> dict:
    # PyYAML reads the key `on` as True; map it back.
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def _check_jsonschema(schema: str, files: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, *map(str, files)],
                          capture_output=True, text=True, timeout=120)


def test_there_are_workflows_and_forms():
    names = {p.name for p in WORKFLOWS}
    assert {"validate.yml", "pages.yml"} <= names
    assert "add-paper.yml" in {p.name for p in ISSUE_FORMS}
    assert (ROOT / ".github" / "pull_request_template.md").is_file()


def test_workflows_match_the_github_schema():
    proc = _check_jsonschema("vendor.github-workflows", WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_issue_forms_match_the_github_schema():
    proc = _check_jsonschema("vendor.github-issue-forms", ISSUE_FORMS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n", encoding="utf-8")
    assert _check_jsonschema("vendor.github-workflows", [bad]).returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_follows_project_rules(path):
    wf = _load(path)
    text = path.read_text(encoding="utf-8")
    assert "pull_request_target" not in wf["on"], "pull_request_target runs untrusted code with secrets"
    assert isinstance(wf.get("permissions"), dict), "declare top-level permissions explicitly"
    assert all(v in ("read", "none") for v in wf["permissions"].values()), "top-level permissions must be read-only"
    for job_id, job in wf["jobs"].items():
        assert "timeout-minutes" in job, f"job {job_id} needs timeout-minutes"
        perms = job.get("permissions", {})
        assert perms != "write-all" and isinstance(perms, dict), f"job {job_id}: explicit permissions map"
        for scope, level in perms.items():
            assert level in ("read", "none") or scope in WRITE_SCOPES_ALLOWED, f"job {job_id}: {scope}: {level}"
            if "pull_request" in wf["on"]:
                assert level in ("read", "none"), f"job {job_id} runs on pull requests: no write access"
        for step in job.get("steps", []):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", step["uses"]), step["uses"]
            if "run" in step:
                assert not re.search(r"\$\{\{\s*(github\.event|github\.head_ref|inputs\.)", step["run"]), \
                    f"job {job_id}: expand untrusted context through env:, not inside run:"
    assert "\t" not in text


def test_pages_workflow_deploys_with_least_privilege():
    wf = _load(ROOT / ".github" / "workflows" / "pages.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    steps = {s.get("uses", "").split("@")[0] for job in wf["jobs"].values() for s in job.get("steps", [])}
    assert {"actions/upload-pages-artifact", "actions/deploy-pages"} <= steps
    deploy = wf["jobs"]["deploy"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    build = wf["jobs"]["build"]
    assert all(level == "read" for level in build["permissions"].values())
    assert "--strict" in yaml.safe_dump(build)


def test_validate_workflow_runs_on_pull_requests():
    wf = _load(ROOT / ".github" / "workflows" / "validate.yml")
    assert "pull_request" in wf["on"]
    runs = " ".join(s.get("run", "") for s in wf["jobs"]["validate"]["steps"])
    for needed in ("atlas validate", "pytest", "make site", "chromium-driver"):
        assert needed in runs, needed


def test_weekly_workflow_tests_the_newest_allowed_releases():
    wf = _load(ROOT / ".github" / "workflows" / "latest.yml")
    assert "schedule" in wf["on"] and wf["permissions"] == {"contents": "read"}
    runs = " ".join(s.get("run", "") for s in wf["jobs"]["latest"]["steps"])
    assert "make test-latest" in runs
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "test-latest:" in make and "--upgrade" in make.split("test-latest:")[1].split("\n\n")[0]


def test_workflows_install_the_project_with_the_lock():
    for name in ("enrich.yml", "ingest.yml", "pages.yml"):
        text = (ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8")
        assert "-c requirements/lock.txt -e" in text, name
