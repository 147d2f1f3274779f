"""One budget rule for every method: int = count (capped), float = floor(fraction * n), at least one."""
import pytest

from lvlm_atlas.methods.budget import resolve_budget


@pytest.mark.parametrize("budget, n, kept", [
    (None, 50, 50), (1.0, 50, 50), (0.1, 95, 9), (0.3, 10, 3), (0.25, 576, 144), (1 / 9, 576, 64),
    (0.001, 50, 1), (7, 50, 7), (70, 50, 50), (64, 576, 64),
])
def test_rule(budget, n, kept):
    assert resolve_budget(budget, n) == kept


@pytest.mark.parametrize("bad, err", [(0.0, ValueError), (1.5, ValueError), (0, ValueError), (-3, ValueError),
                                      (True, TypeError), ("64", TypeError)])
def test_bad_budgets_are_explained(bad, err):
    with pytest.raises(err, match="budget"):
        resolve_budget(bad, 50)


def test_every_method_uses_the_one_rule():
    """No module computes its own budget from a fraction (the rule lives in methods/budget.py only)."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "lvlm_atlas" / "methods"
    offenders = [str(p) for p in root.rglob("*.py") if p.name != "budget.py"
                 and re.search(r"def resolve_\w*budget", p.read_text(encoding="utf-8"))]
    assert offenders == []
