"""Deterministic 2-D layout of the citation graph, computed at build time (so the browser only draws).

A force-directed layout in the Fruchterman-Reingold style, vectorised with numpy: edges pull their ends
together, every node is pushed away from the others, and a weak pull towards an anchor per group (the
inference stage) keeps stages together and unconnected papers on screen. Repulsion is approximated by
binning nodes into a grid and pushing each node away from every cell's centre of mass (one level of a
Barnes-Hut scheme), so one iteration costs O(nodes x cells) instead of O(nodes^2): a 5,000-node graph
takes seconds. The seed is fixed and positions are rounded, so the output is reproducible.
"""
from __future__ import annotations

import math
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np


def layout(nodes: Sequence[Hashable], edges: Iterable[tuple[Hashable, Hashable]],
           groups: Mapping[Hashable, str] | None = None, *, iterations: int | None = None, seed: int = 7,
           size: float = 1000.0) -> dict[Hashable, tuple[float, float]]:
    """Positions in [0, size] x [0, size], keyed by node, rounded to 0.1."""
    n = len(nodes)
    if iterations is None:
        iterations = 150 if n <= 1000 else 60
    if n == 0:
        return {}
    if n == 1:
        return {nodes[0]: (size / 2, size / 2)}
    index = {node: i for i, node in enumerate(nodes)}
    pairs = np.array([(index[u], index[v]) for u, v in edges if u in index and v in index and u != v],
                     dtype=np.int64).reshape(-1, 2)
    rng = np.random.default_rng(seed)

    # group anchors on a circle; nodes start near their anchor
    names = sorted({(groups or {}).get(node, "") for node in nodes})
    angle = {g: 2 * math.pi * i / len(names) for i, g in enumerate(names)}
    radius = 0.0 if len(names) == 1 else 0.35
    anchors = np.array([[radius * math.cos(angle[(groups or {}).get(node, "")]),
                         radius * math.sin(angle[(groups or {}).get(node, "")])] for node in nodes])
    pos = anchors + rng.normal(scale=0.15, size=(n, 2))

    k = 1.0 / math.sqrt(n)                  # ideal edge length in a unit area
    cells = int(min(16, max(4, math.sqrt(n) / 2)))
    temperature = 0.1
    cool = temperature / (iterations + 1)
    gravity = 0.02
    for _ in range(iterations):
        disp = _repulsion(pos, k, cells)
        if len(pairs):
            delta = pos[pairs[:, 0]] - pos[pairs[:, 1]]
            dist = np.maximum(np.linalg.norm(delta, axis=1), 1e-9)
            pull = delta * (dist / k)[:, None]          # |f| = d^2 / k
            np.add.at(disp, pairs[:, 0], -pull)
            np.add.at(disp, pairs[:, 1], pull)
        disp += gravity * (anchors - pos) / k
        length = np.maximum(np.linalg.norm(disp, axis=1), 1e-9)
        pos += disp * (np.minimum(length, temperature) / length)[:, None]
        temperature -= cool

    lo, hi = pos.min(axis=0), pos.max(axis=0)
    span = float(max(hi - lo)) or 1.0
    scaled = (pos - lo) / span * size
    return {node: (round(float(x), 1), round(float(y), 1)) for node, (x, y) in zip(nodes, scaled)}


def _repulsion(pos: np.ndarray, k: float, cells: int) -> np.ndarray:
    """Push every node away from the mass in each grid cell (|f| = k^2 * mass / d)."""
    lo = pos.min(axis=0)
    span = np.maximum(pos.max(axis=0) - lo, 1e-9)
    ij = np.minimum((((pos - lo) / span) * cells).astype(np.int64), cells - 1)
    cell = ij[:, 0] * cells + ij[:, 1]
    count = np.bincount(cell, minlength=cells * cells).astype(float)
    cx = np.bincount(cell, weights=pos[:, 0], minlength=cells * cells)
    cy = np.bincount(cell, weights=pos[:, 1], minlength=cells * cells)
    # a node's own cell acts through the centre of the *other* nodes in it
    own_count = count[cell] - 1
    own_c = np.stack([cx[cell] - pos[:, 0], cy[cell] - pos[:, 1]], axis=1) / np.maximum(own_count, 1)[:, None]
    occupied = np.nonzero(count)[0]
    centres = np.stack([cx[occupied], cy[occupied]], axis=1) / count[occupied][:, None]
    mass = count[occupied]
    floor = (k * 0.05) ** 2
    # sum over cells of (p - c) * w / |p - c|^2 = p * sum(w / d2) - sum(c * w / d2): one n x cells matrix of
    # inverse squared distances and three weighted row sums, instead of n x cells x 2 temporaries. (No
    # matrix products: BLAS runs them on a thread pool, which spins on a busy machine and multiplied the
    # CPU time of this step by up to five.)
    # Single precision for this matrix only (half the memory traffic; forces need no more).
    p32, c32 = pos.astype(np.float32), centres.astype(np.float32)
    dx = p32[:, :1] - c32[None, :, 0]
    dy = p32[:, 1:] - c32[None, :, 1]
    d2 = dx * dx
    d2 += dy * dy
    np.maximum(d2, np.float32(floor), out=d2)
    np.reciprocal(d2, out=d2)
    w = (k * k) * mass
    row_sums = [(d2 * weights.astype(np.float32)).sum(axis=1, dtype=np.float64)
                for weights in (w, w * centres[:, 0], w * centres[:, 1])]
    disp = pos * row_sums[0][:, None] - np.stack(row_sums[1:], axis=1)
    # take out the own cell's term (it is replaced by the exact-ish term below)
    own = np.searchsorted(occupied, cell)
    own_centre_delta = pos - centres[own]
    own_cd2 = np.maximum((own_centre_delta ** 2).sum(axis=1), floor)
    disp -= own_centre_delta * ((k * k) * mass[own] / own_cd2)[:, None]
    own_delta = pos - own_c
    own_d2 = np.maximum((own_delta ** 2).sum(axis=1), (k * 0.05) ** 2)
    disp += own_delta * (k * k * own_count / own_d2)[:, None]
    return disp
