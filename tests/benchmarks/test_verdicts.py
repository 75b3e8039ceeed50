"""The verdicts of the "beat LSTM and GRU" benchmarks: one found cell checked per comparison, picked
by validation, in the task metric's direction (accuracy up, bits per character down)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import charlm  # noqa: E402
import vs_baselines  # noqa: E402
from nas.baselines import Score  # noqa: E402
from workers.metrics import METRICS  # noqa: E402


def _score(number, macs, val, test, baseline=None, sd=0.01):
    return Score(number, macs, val, test, sd, sd, 5, baseline)


def test_the_cheaper_match_is_picked_by_validation_not_by_test():
    acc = METRICS["accuracy"]
    base = _score(0, 1000, 0.90, 0.90, "gru-h32")
    lucky = _score(1, 500, 0.85, 0.95)  # best on test, but validation would not pick it
    picked = _score(2, 600, 0.92, 0.89)
    out = vs_baselines.verdicts([base, lucky, picked], acc)
    assert out["cheaper_pick"] == 2 and out["cheaper_match"] is None  # 0.89 < 0.90: checked honestly, fails
    out = vs_baselines.verdicts([base, lucky, _score(2, 600, 0.92, 0.91)], acc)
    assert out["cheaper_match"] == 2


def test_a_minimised_metric_turns_every_comparison():
    bpc = METRICS["bpc"]
    base = _score(0, 1000, 1.60, 1.60, "lstm-h128")
    found = _score(1, 600, 1.55, 1.58)  # lower bits per character: better, and cheaper than 0.7x
    out = vs_baselines.verdicts([base, found], bpc)
    assert out["cheaper_match"] == 1
    assert vs_baselines.verdicts([base, _score(1, 600, 1.55, 1.62)], bpc)["cheaper_match"] is None


def test_charlm_verdicts_against_each_lstm_and_gru():
    cells = [
        {"trial": 0, "baseline": "lstm-h128", "macs": 1000, "val": 1.70, "test": 1.70, "test_sd": 0.01, "seeds": 3},
        {"trial": 1, "baseline": "gru-h128", "macs": 750, "val": 1.66, "test": 1.66, "test_sd": 0.01, "seeds": 3},
        {"trial": 2, "baseline": None, "macs": 650, "val": 1.60, "test": 1.61, "test_sd": 0.01, "seeds": 3},
        {"trial": 3, "baseline": None, "macs": 400, "val": 1.75, "test": 1.74, "test_sd": 0.01, "seeds": 3},
    ]
    by_rival = {v["rival"]: v for v in charlm.verdicts(cells)}
    lstm, gru = by_rival["lstm-h128"], by_rival["gru-h128"]
    assert (lstm["cheap"], lstm["cheap_passes"]) == (2, True)  # 650 <= 700 MACs and 1.61 <= 1.70
    assert (lstm["equal"], lstm["equal_passes"]) == (2, True)  # 0.09 bpc better, far beyond 2 SE
    assert (gru["cheap"], gru["cheap_passes"]) == (3, False)  # only #3 fits 0.7 x 750 MACs: 1.74 > 1.66
    assert (gru["equal"], gru["equal_passes"]) == (2, True)
