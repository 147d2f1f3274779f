"""The one budget rule of every method (token pruning and KV cache alike). No torch.

A budget is how much a method keeps out of `n` items (visual tokens, or KV entries per layer and head):

* ``None``: keep everything (the method runs but removes nothing);
* an ``int`` >= 1: that many items, capped at `n`;
* a ``float`` in (0, 1]: that fraction of `n`, rounded DOWN (``floor(budget * n)``, as the official code of
  kvpress, FastV and PyramidDrop truncate with ``int(...)``), and never fewer than one item.
"""
from __future__ import annotations

import math

EPS = 1e-9   # 0.3 * 10 is 2.9999999999999996 in floating point: the rule means 3


def resolve_budget(budget: int | float | None, n: int, what: str = "items") -> int:
    """Items kept out of `n` under `budget` (see the module docstring)."""
    if budget is None:
        return n
    if isinstance(budget, bool):
        raise TypeError(f"budget must be an int ({what} kept) or a float fraction in (0, 1], not bool")
    if isinstance(budget, float):
        if not 0.0 < budget <= 1.0:
            raise ValueError(f"a fractional budget must be in (0, 1], got {budget}; write e.g. 0.25, or an int count")
        return max(1, min(n, math.floor(budget * n + EPS)))
    if not isinstance(budget, int):
        raise TypeError(f"budget must be an int ({what} kept) or a float fraction in (0, 1], not {type(budget).__name__}")
    if budget < 1:
        raise ValueError(f"a budget must keep at least one of the {what}, got {budget}")
    return min(budget, n)
