"""Metrics of any direction and range: values against scikit-learn and closed forms, and a minimised
metric through the study, its front, its hypervolume and the search's counters."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score

from nas.config import ConfigError
from nas.study import hypervolume_2d, open_study, pareto_front, reference_score, study_metric, summarize
from search_spaces import Task
from workers.data import DataError, Dataset, Split, load_dataset
from workers.metrics import METRICS, check_metric, get_metric
from workers.scoring import Scorer, confusion_score

ACC, BPC = METRICS["accuracy"], METRICS["bpc"]


def test_direction_and_bounds_say_which_value_is_better():
    assert ACC.better(0.9, 0.8) and not ACC.better(0.8, 0.9)
    assert BPC.better(1.5, 1.6) and BPC.oriented(1.5) == -1.5
    assert ACC.worst == 0.0 and BPC.worst == math.inf and METRICS["perplexity"].lower == 1.0
    assert BPC.best([1.7, math.nan, 1.4, 2.0]) == 1.4 and ACC.best([math.nan]) is None
    assert BPC.gain(1.4, 1.5) == pytest.approx(0.1) and BPC.fmt(1.23456) == "1.235" and BPC.fmt(math.nan) == "-"


def test_unknown_or_unfitting_metrics_are_named():
    with pytest.raises(ValueError, match="unknown metric 'f2'.*accuracy"):
        get_metric("f2")
    with pytest.raises(ValueError, match="'mse' does not score 'classify'.*balanced_accuracy"):
        check_metric("mse", "classify")
    data = load_dataset("digits-seq")
    assert data.scoring().name == "accuracy" and data.scoring("macro_f1").name == "macro_f1"
    with pytest.raises(DataError, match="train.metric.*digits-seq"):
        data.scoring("bpc")
    assert load_dataset("adding").scoring().name == "accuracy"  # the adding problem's tolerance criterion


@pytest.mark.parametrize("name, reference", [
    ("balanced_accuracy", balanced_accuracy_score),
    ("macro_f1", lambda y, p: f1_score(y, p, average="macro", zero_division=0)),
    ("accuracy", lambda y, p: float(np.mean(y == p))),
])
def test_classification_scores_equal_scikit_learn(name, reference):
    rng = np.random.default_rng(0)
    y = rng.choice(5, size=300, p=[0.6, 0.2, 0.1, 0.1, 0.0])  # class 4 never true: only predicted
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 5, 300))
    pred[pred == 3] = 2  # class 3 never predicted
    confusion = torch.zeros(5, 5, dtype=torch.long)
    for t, p in zip(y, pred):
        confusion[t, p] += 1
    assert confusion_score(name, confusion) == pytest.approx(reference(y, pred), abs=1e-12)


def test_scorer_accumulates_over_batches_like_one_pass():
    rng = torch.Generator().manual_seed(0)
    out, y = torch.randn(100, 3, generator=rng), torch.randn(100, 3, generator=rng)
    whole, split = Scorer(METRICS["mse"], "regress", 3), Scorer(METRICS["mse"], "regress", 3)
    whole.add(out, y, 0.0)
    for i in range(0, 100, 32):
        split.add(out[i:i + 32], y[i:i + 32], 0.0)
    assert split.value == pytest.approx(float(((out - y) ** 2).mean()), rel=1e-6) == pytest.approx(whole.value)
    mae = Scorer(METRICS["mae"], "regress", 3)
    mae.add(out, y, 0.0)
    assert mae.value == pytest.approx(float((out - y).abs().mean()), rel=1e-6)


def test_bits_per_character_of_a_known_distribution():
    """A model that predicts every next token uniformly over V symbols spends log2(V) bits on each;
    one that puts probability p on the true token spends -log2(p). Token-weighted over batches."""
    vocab = 8
    scorer = Scorer(BPC, "lm", vocab)
    for tokens in (5, 37):  # batches of different sizes: weighted by tokens, not by batch
        logits, y = torch.zeros(1, tokens, vocab), torch.zeros(1, tokens, dtype=torch.long)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1), reduction="sum")
        scorer.add(logits, y, float(loss))
    assert scorer.value == pytest.approx(math.log2(vocab), rel=1e-6)  # float32 logits
    sharp = Scorer(METRICS["perplexity"], "lm", 2)
    p = 0.8
    logits = torch.tensor([[[math.log(p), math.log(1 - p)]]]).repeat(1, 10, 1)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 2), torch.zeros(10, dtype=torch.long), reduction="sum")
    sharp.add(logits, torch.zeros(1, 10, dtype=torch.long), float(loss))
    assert sharp.value == pytest.approx(1 / p, rel=1e-6)  # perplexity = 2 ** bpc = 1 / p


def test_a_minimised_metric_through_the_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study("lm", storage, metric=BPC)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"] and study_metric(study) is BPC
    for bpc, macs in ((2.0, 100), (1.5, 300), (1.8, 200), (1.6, 400), (2.4, 50)):
        study.enqueue_trial({})
        trial = study.ask()
        study.tell(trial, [bpc, macs])
    assert [t.values[0] for t in pareto_front(study)] == [1.5, 1.8, 2.0, 2.4]
    summary = summarize(study)
    assert (summary.best_score, summary.best_macs, summary.metric) == (1.5, 300, BPC)
    with pytest.raises(ConfigError, match="scores its trials by bpc, this config by accuracy"):
        open_study("lm", storage)
    assert study_metric(open_study("lm", storage, create=False)) is BPC


def test_hypervolume_of_a_mirrored_front_is_the_same_area():
    """Accuracy a up is error 1 - a down: the same front, the same area from mirrored references."""
    points = [(0.9, 300.0), (0.8, 100.0), (0.85, 200.0), (0.5, 50.0), (0.7, 250.0)]
    up = hypervolume_2d(points, (0.0, 400.0))
    down = hypervolume_2d([(1 - a, c) for a, c in points], (1.0, 400.0), METRICS["mse"])
    assert up == pytest.approx(down) and up > 0
    # an unbounded metric is measured from the worst score seen: the worst point adds nothing
    bpcs = [2.0, 1.5, 3.0]
    assert reference_score(BPC, bpcs) == 3.0 and reference_score(ACC, [0.9]) == 0.0


def test_the_trainer_reports_the_configured_metric():
    from search_spaces import gru
    from workers.settings import TrainConfig
    from workers.training import Trainer

    data = load_dataset("digits-seq")
    trainer = Trainer(gru(16), data, TrainConfig(epochs=1, metric="macro_f1"))
    result = trainer.train_epoch()
    assert trainer.metric.name == "macro_f1" and 0 < result.score <= 1
    # the same model scored by accuracy differs on the same epoch: the metric is really computed
    from workers.training import evaluate

    acc, _ = evaluate(trainer.model, data.val, data.task, ACC)
    assert acc != result.score


def test_a_regression_set_defaults_to_mse_and_minimises_it():
    x = torch.randn(40, 5, 2)
    y = x.sum(dim=(1, 2)).unsqueeze(-1)
    split = Split(x, y)
    data = Dataset("toy", Task(2, 5, 1, objective="regress"), split, split, split)
    assert data.scoring().name == "mse" and not data.scoring().maximize


def test_an_unbounded_metric_is_measured_from_the_score_of_guessing():
    """A candidate that blew up (461 bits per character) must not set the scale of a hypervolume:
    the study records the score of a model that ignores its input, and measures from it."""
    stream = Split(torch.zeros(50, dtype=torch.long), torch.zeros(50, dtype=torch.long))
    text = Dataset("toy", Task(8, 16, 8, input_kind="tokens", objective="lm"), stream, stream, stream)
    assert text.chance_score(BPC) == pytest.approx(3.0) and text.chance_score(METRICS["perplexity"]) == 8.0
    y_train, y_val = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [6.0]])
    x = torch.zeros(2, 4, 1)
    reg = Dataset("toy", Task(1, 4, 1, objective="regress"), Split(x, y_train), Split(x, y_val), Split(x, y_val))
    assert reg.chance_score(METRICS["mse"]) == pytest.approx((0.0 + 16.0) / 2)  # the training mean is 2
    assert reg.chance_score(METRICS["mae"]) == pytest.approx(2.0) and reg.chance_score(ACC) == 0.0
    assert reference_score(BPC, [2.0, 461.0], recorded=3.0) == 3.0
    assert hypervolume_2d([(2.0, 0.5), (461.0, 0.1)], (3.0, 1.0), BPC) == pytest.approx(0.5)


@pytest.mark.parametrize("train, expected", [
    ({"metric": "bpc"}, "train.metric: metric 'bpc' does not score 'classify' tasks"),
    ({"metric": "recall"}, "unknown metric 'recall'"),
    ({"steps_per_epoch": 10}, "train.steps_per_epoch: caps the bptt windows of a language model"),
])
def test_a_metric_or_option_that_does_not_fit_the_data_exits_2_and_writes_nothing(tmp_path, capsys, train, expected):
    import yaml

    from nas.cli import main

    config = {"name": "bad", "data": {"name": "digits-seq"}, "train": train, "search": {"trials": 2}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(config))
    assert main(["search", str(tmp_path / "bad.yaml"), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert expected in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "runs" / "bad").exists()
