"""Pure eviction functions against naive, loop-based references."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from lvlm_atlas.methods.kv import evict  # noqa: E402


def naive_topk(scores_row, keep, force_row=None):
    """Python reference: forced entries first, then by score (desc), ties to the earlier entry."""
    n = len(scores_row)
    forced = [i for i in range(n) if force_row is not None and force_row[i]]
    rest = sorted((i for i in range(n) if i not in forced), key=lambda i: (-scores_row[i], i))
    return sorted(forced + rest[: keep - len(forced)])


@pytest.mark.parametrize("keep", [1, 5, 17, 40])
def test_topk_keep_equals_naive_reference(keep):
    g = torch.Generator().manual_seed(keep)
    scores = torch.randint(0, 6, (2, 3, 40), generator=g).float()  # many ties on purpose
    force = torch.zeros(40, dtype=torch.bool)
    force[-min(keep, 4):] = True
    got = evict.topk_keep(scores, keep, force)
    assert got.shape == (2, 3, keep)
    for b in range(2):
        for h in range(3):
            assert got[b, h].tolist() == naive_topk(scores[b, h].tolist(), keep, force.tolist())


def test_topk_keep_rejects_impossible_budgets():
    with pytest.raises(ValueError, match="forced"):
        evict.topk_keep(torch.rand(1, 1, 10), 2, torch.ones(10, dtype=torch.bool), force_count=10)
    with pytest.raises(ValueError, match="cannot keep"):
        evict.topk_keep(torch.rand(1, 1, 10), 11)


def test_group_scores_folds_gqa_groups():
    s = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    got = evict.group_scores(s, 2, "sum")
    assert torch.equal(got[:, 0], s[:, 0] + s[:, 1]) and torch.equal(got[:, 1], s[:, 2] + s[:, 3])
    assert torch.equal(evict.group_scores(s, 2, "mean"), got / 2)


@pytest.mark.parametrize("kind", ["max", "avg", "avg_valid"])
def test_pool_scores_equals_windowed_loop(kind):
    """avg counts the padding as zeros (the official code's F.avg_pool1d default); avg_valid does not."""
    g = torch.Generator().manual_seed(0)
    s = torch.rand(1, 2, 11, generator=g)
    got = evict.pool_scores(s, 5, kind)
    for h in range(2):
        for i in range(11):
            win = s[0, h, max(0, i - 2): i + 3]
            want = {"max": win.max(), "avg": win.sum() / 5, "avg_valid": win.mean()}[kind]
            assert got[0, h, i] == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("avg,layers,beta", [(24, 4, 20.0), (100, 32, 20.0), (7, 5, 2.0)])
def test_pyramid_budgets(avg, layers, beta):
    b = evict.pyramid_budgets(avg, layers, beta)
    assert sum(b) == avg * layers
    assert all(x >= y for x, y in zip(b, b[1:]))  # non-increasing from bottom to top
    assert b[-1] == pytest.approx(avg / beta, abs=1.0)


def test_proportional_budgets_respect_cap_and_total():
    b = evict.proportional_budgets([10.0, 1.0, 1.0, 0.0], total=40, cap=20)
    assert sum(b) == 40 and max(b) <= 20 and min(b) >= 1
    assert b[0] == 20  # capped, the rest re-spread
    assert abs(b[1] - b[2]) <= 1 and min(b[1], b[2]) > b[3]  # equal weights, one leftover entry


def test_evicted_index_is_complement():
    keep = torch.tensor([[[0, 3, 4]]])
    assert evict.evicted_index(keep, 6).tolist() == [[[1, 2, 5]]]


@pytest.mark.parametrize("weighted", [False, True])
def test_merge_into_kept_equals_naive_loop(weighted):
    g = torch.Generator().manual_seed(5)
    keys, values = torch.randn(1, 2, 9, 4, generator=g), torch.randn(1, 2, 9, 4, generator=g)
    w = torch.rand(1, 2, 9, generator=g) if weighted else None
    keep = torch.tensor([[[0, 4, 8], [1, 2, 7]]])
    mk, mv = evict.merge_into_kept(keys, values, keep, w)
    for h in range(2):
        kept = keep[0, h].tolist()
        acc = {j: ([keys[0, h, j]], [values[0, h, j]], [1.0 if w is None else float(w[0, h, j])]) for j in kept}
        for e in range(9):
            if e in kept:
                continue
            sims = [torch.nn.functional.cosine_similarity(keys[0, h, e], keys[0, h, j], dim=0) for j in kept]
            j = kept[int(torch.stack(sims).argmax())]
            acc[j][0].append(keys[0, h, e])
            acc[j][1].append(values[0, h, e])
            acc[j][2].append(1.0 if w is None else float(w[0, h, e]))
        for slot, j in enumerate(kept):
            ks, vs, ws = acc[j]
            wt = torch.tensor(ws)
            want_k = (torch.stack(ks) * wt[:, None]).sum(0) / wt.sum()
            want_v = (torch.stack(vs) * wt[:, None]).sum(0) / wt.sum()
            torch.testing.assert_close(mk[0, h, slot], want_k)
            torch.testing.assert_close(mv[0, h, slot], want_v)
