"""The user's own data: formats, split rules, standardisation, padding, and bad files.

Every format is checked against the same sequences written as ``.npz``; each split rule for sizes,
stratification and leaks (every sequence carries its id in a feature, so a sequence in two splits is
seen); the official test split for never influencing selection.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search_spaces import Task, build, get_space, gru, lstm
from workers.data import DataError, load_dataset
from workers.training import TrainConfig, Trainer

CLASSES = np.array([0] * 40 + [1] * 30 + [2] * 20 + [3] * 10)  # unbalanced on purpose


def _sequences(n: int = 100, steps: int = 6, features: int = 3, seed: int = 0, lengths=None):
    """Float sequences whose feature 0 is the sequence id (to see leaks) and labels ``CLASSES``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, size=(n, steps, features))
    x[:, :, 0] = np.arange(n)[:, None] + 1000 * seed
    if lengths is not None:
        x[np.arange(steps)[None, :] >= np.asarray(lengths)[:, None]] = 0.0
    return x, CLASSES[:n] if n == len(CLASSES) else rng.integers(0, 3, n)


def _ids(split) -> set[int]:
    return {int(v) for v in split.x[:, 0, 0]}


def _npz(path, x, y, **extra):
    np.savez(path, x=x, y=y, **extra)
    return str(path)


def _long_frame(x, y, lengths=None):
    import pandas as pd

    rows = []
    for i, (seq, label) in enumerate(zip(x, y)):
        for t in range(lengths[i] if lengths is not None else len(seq)):
            rows.append({"id": f"s{i}", "label": label, **{f"f{j}": seq[t, j] for j in range(seq.shape[1])}})
    return pd.DataFrame(rows)


def _write_ts(path, x, y, lengths=None):
    """A UEA/UCR .ts file: one series per line, channels separated by ':', the label last."""
    equal = lengths is None
    lines = ["@problemName test", "@timeStamps false", "@missing false", "@univariate false",
             f"@dimensions {x.shape[2]}", f"@equalLength {str(equal).lower()}"]
    lines += [f"@seriesLength {x.shape[1]}"] if equal else []
    lines += ["@classLabel true " + " ".join(str(c) for c in sorted(set(y.tolist()))), "@data"]
    for i, (seq, label) in enumerate(zip(x, y)):
        steps = x.shape[1] if equal else lengths[i]
        lines.append(":".join(",".join(repr(float(v)) for v in seq[:steps, c]) for c in range(x.shape[2])) + f":{label}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ---- split rules ------------------------------------------------------------------------------------
def test_one_file_is_split_by_fractions_stratified_and_without_leaks(tmp_path):
    x, y = _sequences()
    data = load_dataset("npz", path=_npz(tmp_path / "all.npz", x, y), split=[0.6, 0.2, 0.2])
    assert (len(data.train), len(data.val), len(data.test)) == (60, 20, 20)
    parts = [_ids(s) for s in (data.train, data.val, data.test)]
    assert set.union(*parts) == set(range(100)) and sum(map(len, parts)) == 100  # disjoint, complete
    for split, size in ((data.train, 60), (data.val, 20), (data.test, 20)):
        counts = np.bincount(split.y.numpy(), minlength=4)
        np.testing.assert_allclose(counts, np.bincount(CLASSES) * size / 100, atol=1)  # stratified
        ids = split.x[:, 0, 0].long().numpy()
        assert np.array_equal(split.y.numpy(), CLASSES[ids])  # labels travel with their sequences
    assert data.describe()["val"] == {"size": 20, "source": "20% of all.npz, stratified"}
    again = load_dataset("npz", path=str(tmp_path / "all.npz"), split=(0.6, 0.2, 0.2))
    other_seed = load_dataset("npz", path=str(tmp_path / "all.npz"), seed=1)
    assert _ids(again.val) == parts[1] and _ids(other_seed.val) != parts[1]


def test_official_test_file_is_the_test_split_untouched(tmp_path):
    x, y = _sequences()
    xt, yt = _sequences(37, seed=1)
    data = load_dataset("npz", train_path=_npz(tmp_path / "train.npz", x, y), test_path=_npz(tmp_path / "test.npz", xt, yt))
    assert (len(data.train), len(data.val), len(data.test)) == (80, 20, 37)  # val_fraction 0.2 by default
    assert _ids(data.train) | _ids(data.val) == set(range(100)) and not _ids(data.train) & _ids(data.val)
    np.testing.assert_allclose(data.test.x.numpy(), xt.astype(np.float32))  # the file, in its order
    assert np.array_equal(data.test.y.numpy(), yt)
    np.testing.assert_allclose(np.bincount(data.val.y.numpy(), minlength=4), np.bincount(CLASSES) * 0.2, atol=1)
    assert data.sources["test"] == "official test.npz"
    # standardisation: the training split's statistics only (not validation, not test)
    train_steps = data.train.x.reshape(-1, 3).double()
    np.testing.assert_allclose(data.task.input_mean, train_steps.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(data.task.input_std, train_steps.std(0, unbiased=False).numpy(), rtol=1e-5)
    carved = load_dataset("npz", train_path=str(tmp_path / "train.npz"), val_fraction=0.3)
    assert (len(carved.train), len(carved.val), len(carved.test)) == (70, 30, 0)
    assert carved.sources["test"] == "none"


def test_validation_file_is_used_as_given(tmp_path):
    x, y = _sequences()
    xv, yv = _sequences(15, seed=2)
    data = load_dataset("npz", train_path=_npz(tmp_path / "a.npz", x, y), val_path=_npz(tmp_path / "v.npz", xv, yv))
    assert (len(data.train), len(data.val), len(data.test)) == (100, 15, 0)
    assert _ids(data.val) == {2000 + i for i in range(15)}


def test_official_test_split_never_influences_selection(tmp_path):
    """Scrambling the test labels changes test accuracy only: the same epochs, validation results,
    best epoch and weights."""
    x, y = _sequences()
    xt, yt = _sequences(30, seed=1)
    train = _npz(tmp_path / "train.npz", x, y)
    runs = []
    for name, labels in (("t1.npz", yt), ("t2.npz", (yt + 1) % 3)):
        data = load_dataset("npz", train_path=train, test_path=_npz(tmp_path / name, xt, labels))
        trainer = Trainer(gru(8), data, TrainConfig(epochs=3, batch_size=32))
        for _ in range(3):
            trainer.train_epoch()
        runs.append(trainer)
    a, b = runs
    assert [r.score for r in a.history] == [r.score for r in b.history]
    assert a.best.epoch == b.best.epoch
    assert [r.test_score for r in a.history] != [r.test_score for r in b.history]
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)


def test_no_test_split_reports_nan_test_score(tmp_path):
    x, y = _sequences()
    data = load_dataset("npz", train_path=_npz(tmp_path / "train.npz", x, y))
    result = Trainer(gru(8), data, TrainConfig(epochs=1)).train_epoch()
    assert np.isnan(result.test_score) and 0 <= result.score <= 1


# ---- formats ----------------------------------------------------------------------------------------
def _same(a, b):
    for s in ("train", "val", "test"):
        sa, sb = getattr(a, s), getattr(b, s)
        torch.testing.assert_close(sa.x, sb.x)
        assert torch.equal(sa.y, sb.y)
        assert (sa.lengths is None and sb.lengths is None) or torch.equal(sa.lengths, sb.lengths)
    assert a.task == b.task or (a.task.to_dict() | {"input_std": 0, "input_mean": 0}
                                == b.task.to_dict() | {"input_std": 0, "input_mean": 0})
    np.testing.assert_allclose(a.task.input_mean, b.task.input_mean, rtol=1e-12)  # CSV's text round trip
    np.testing.assert_allclose(a.task.input_std, b.task.input_std, rtol=1e-12)


def test_csv_parquet_and_ts_read_the_same_sequences_as_npz(tmp_path):
    pytest.importorskip("pandas")
    x, y = _sequences()
    xt, yt = _sequences(20, seed=1)
    reference = load_dataset("npz", train_path=_npz(tmp_path / "a.npz", x, y), test_path=_npz(tmp_path / "b.npz", xt, yt))
    _long_frame(x, y).to_csv(tmp_path / "a.csv", index=False)
    _long_frame(xt, yt).to_csv(tmp_path / "b.csv", index=False)
    _same(reference, load_dataset("csv", train_path=str(tmp_path / "a.csv"), test_path=str(tmp_path / "b.csv")))
    pytest.importorskip("pyarrow")
    _long_frame(x, y).to_parquet(tmp_path / "a.parquet")
    _long_frame(xt, yt).to_parquet(tmp_path / "b.parquet")
    _same(reference, load_dataset("parquet", train_path=str(tmp_path / "a.parquet"), test_path=str(tmp_path / "b.parquet")))
    pytest.importorskip("aeon")
    ts = load_dataset("ts", train_path=_write_ts(tmp_path / "a.ts", x, y), test_path=_write_ts(tmp_path / "b.ts", xt, yt))
    _same(reference, ts)


def test_variable_length_csv_and_ts_equal_npz_with_lengths(tmp_path):
    pytest.importorskip("pandas")
    lengths = np.random.default_rng(1).integers(2, 7, 100)
    x, y = _sequences(lengths=lengths)
    reference = load_dataset("npz", path=_npz(tmp_path / "v.npz", x, y, lengths=lengths))
    assert reference.task.variable_length and reference.train.lengths is not None
    _long_frame(x, y, lengths).to_csv(tmp_path / "v.csv", index=False)
    _same(reference, load_dataset("csv", path=str(tmp_path / "v.csv")))
    pytest.importorskip("aeon")
    _same(reference, load_dataset("ts", path=_write_ts(tmp_path / "v.ts", x, y, lengths=lengths)))


def test_csv_with_a_time_column_sorts_steps_and_renamed_columns(tmp_path):
    pytest.importorskip("pandas")
    x, y = _sequences(30, steps=4)
    frame = _long_frame(x, y).rename(columns={"id": "series", "label": "activity"})
    frame["t"] = np.tile(np.arange(4), 30)
    shuffled = frame.sample(frac=1.0, random_state=0)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    data = load_dataset("csv", path=str(tmp_path / "shuffled.csv"), id_column="series", label_column="activity",
                        time_column="t")
    assert data.task.input_size == 3 and data.task.seq_len == 4  # the time column is not a feature
    for split in (data.train, data.val, data.test):
        ids = split.x[:, 0, 0].long().numpy()
        np.testing.assert_allclose(split.x.numpy(), x[ids].astype(np.float32), rtol=1e-6)


def test_wide_csv_one_row_per_sequence_with_trailing_padding(tmp_path):
    pd = pytest.importorskip("pandas")

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 9, 40)
    values = np.full((40, 8), np.nan)
    for i, n in enumerate(lengths):
        values[i, :n] = rng.normal(size=n)
    frame = pd.DataFrame(values, columns=[f"t{i}" for i in range(8)])
    frame.insert(0, "label", np.where(np.arange(40) % 2 == 0, "up", "down"))
    frame.to_csv(tmp_path / "wide.csv", index=False)
    data = load_dataset("csv", path=str(tmp_path / "wide.csv"), standardize=False)
    assert data.task.input_size == 1 and data.task.seq_len == 8 and data.task.output_size == 2
    assert data.task.variable_length
    total = sorted(torch.cat([s.lengths for s in (data.train, data.val, data.test)]).tolist())
    assert total == sorted(lengths.tolist())
    split = data.train
    padding = torch.arange(8)[None, :] >= split.lengths[:, None]
    assert (split.x[..., 0][padding] == 0).all()


def test_npz_tokens_with_lengths(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 9, size=(30, 7))
    lengths = rng.integers(2, 8, 30)
    y = rng.integers(0, 2, 30)
    data = load_dataset("npz", path=_npz(tmp_path / "tok.npz", x, y, lengths=lengths))
    assert data.task.input_kind == "tokens" and not data.task.standardized and data.task.variable_length
    assert data.train.x.dtype == torch.int64 and data.task.input_size == int(x.max()) + 1


# ---- padding and standardisation in the model ---------------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [gru(8), lstm(6), get_space("recurrent_cell", num_nodes=4).sample(np.random.default_rng(3))],
    ids=["gru", "lstm", "recurrent_cell"],  # torch's own LSTM/GRU op, and the C++ engine on CPU
)
def test_padded_batch_equals_per_sequence_runs(spec):
    task = Task(3, 9, 4, input_mean=(1.0, -1.0, 0.5), input_std=(2.0, 0.5, 1.5), variable_length=True)
    model = build(spec, task, seed=1).eval()
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([9, 1, 4, 7, 2])
    x = torch.randn(5, 9, 3, generator=gen)
    x[torch.arange(9)[None, :] >= lengths[:, None]] = 0.0
    with torch.no_grad():
        batched = model(x, lengths)
        alone = torch.cat([model(x[i : i + 1, : lengths[i]]) for i in range(5)])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_variable_length_ts_trains_with_lengths(tmp_path):
    pytest.importorskip("aeon")
    rng = np.random.default_rng(0)
    lengths = rng.integers(4, 12, 30)
    x = rng.normal(size=(30, 11, 2))
    y = np.arange(30) % 3
    data = load_dataset("ts", path=_write_ts(tmp_path / "v.ts", x, y, lengths=lengths))
    assert data.task.variable_length and data.task.seq_len == int(lengths.max())
    result = Trainer(gru(8), data, TrainConfig(epochs=1)).train_epoch()
    assert 0 <= result.score <= 1


def test_standardisation_is_part_of_the_model():
    """The package model on raw inputs equals the unstandardised model on standardised inputs."""
    mean, std = (5.0, -3.0), (2.0, 0.25)
    raw_task, std_task = Task(2, 5, 3), Task(2, 5, 3, input_mean=mean, input_std=std)
    with_stats, without = build(gru(8), std_task, seed=2), build(gru(8), raw_task, seed=2)
    assert set(with_stats.state_dict()) - set(without.state_dict()) == {"input_mean", "input_std"}
    x = torch.randn(4, 5, 2) * torch.tensor(std) + torch.tensor(mean)
    with torch.no_grad():
        torch.testing.assert_close(with_stats(x), without((x - torch.tensor(mean)) / torch.tensor(std)))


# ---- NaN and bad files -----------------------------------------------------------------------------
def test_nan_refused_with_count_and_first_index_or_imputed(tmp_path):
    x, y = _sequences()
    x[7, 2, 1] = x[9, 0, 2] = np.nan
    path = _npz(tmp_path / "gaps.npz", x, y)
    with pytest.raises(DataError, match=r"gaps.npz: 2 NaN value\(s\), the first at sequence 7, step 2, feature 1; .*data.nan: mean"):
        load_dataset("npz", path=path)
    zero = load_dataset("npz", path=path, nan="zero", standardize=False)
    mean = load_dataset("npz", path=path, nan="mean", standardize=False)
    for data in (zero, mean):
        assert all(torch.isfinite(s.x).all() for s in (data.train, data.val, data.test))
    split = next(s for s in (mean.train, mean.val, mean.test) if 7 in _ids(s))
    row = split.x[split.x[:, 0, 0] == 7][0]
    train_mean = np.nanmean(np.concatenate([x[i] for i in _ids(mean.train)])[:, 1])
    assert row[2, 1].item() == pytest.approx(train_mean, rel=1e-5)


def _bad_cases(tmp_path):
    x, y = _sequences()
    good = _npz(tmp_path / "good.npz", x, y)
    np.savez(tmp_path / "noy.npz", x=x)
    np.savez(tmp_path / "shape.npz", x=np.zeros((10, 2, 2, 2)), y=np.zeros(10, dtype=int))
    np.savez(tmp_path / "ylen.npz", x=x, y=y[:50])
    np.savez(tmp_path / "one.npz", x=x[:1], y=y[:1])
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 6, 3)), y=np.zeros(0, dtype=int))
    inf = x.copy()
    inf[3, 1, 0] = np.inf
    np.savez(tmp_path / "inf.npz", x=inf, y=y)
    np.savez(tmp_path / "feat.npz", x=x[:, :, :2], y=y)
    np.savez(tmp_path / "labels.npz", x=x[:10], y=np.full(10, 7))
    np.savez(tmp_path / "neg.npz", x=x, y=y - 1)
    np.savez(tmp_path / "float.npz", x=x, y=y + 0.5)
    (tmp_path / "junk.npz").write_text("not a zip")
    cases = {
        "no such file": ({"path": str(tmp_path / "absent.npz")}, r"absent.npz' does not exist"),
        "missing arrays": ({"path": str(tmp_path / "noy.npz")}, r"noy.npz: must hold arrays 'x' and 'y' \(missing \['y'\]"),
        "wrong shape": ({"path": str(tmp_path / "shape.npz")}, r"shape.npz: x must be \[N, T, F\]"),
        "mismatched lengths": ({"path": str(tmp_path / "ylen.npz")}, r"ylen.npz: y must be 1-D with one label per sequence"),
        "one sample": ({"path": str(tmp_path / "one.npz")}, r"one.npz: has 1 sequence\(s\); splitting one file .* needs at least 3"),
        "empty": ({"path": str(tmp_path / "empty.npz")}, r"empty.npz: has 0 sequence\(s\)"),
        "infinite": ({"path": str(tmp_path / "inf.npz")}, r"inf.npz: 1 infinite value\(s\), the first at sequence 3, step 1, feature 0"),
        "mismatched features": ({"train_path": good, "test_path": str(tmp_path / "feat.npz")},
                                r"test_path: feat.npz: has 2 features per step, the training file 3"),
        "labels out of range": ({"train_path": good, "test_path": str(tmp_path / "labels.npz")},
                                r"labels.npz: labels \[7\] are out of range"),
        "negative labels": ({"path": str(tmp_path / "neg.npz")}, r"neg.npz: labels must be class ids >= 0"),
        "regression targets": ({"path": str(tmp_path / "float.npz")}, r"float.npz: labels must be classes"),
        "not npz": ({"path": str(tmp_path / "junk.npz")}, r"junk.npz: cannot be read as .npz"),
        "both path and train_path": ({"path": good, "train_path": good}, r"either path .* or train_path"),
        "test_path with path": ({"path": good, "test_path": good}, r"go with train_path"),
        "bad split": ({"path": good, "split": [0.5, 0.5, 0.5]}, r"data.split: expected \[train, val, test\] fractions"),
        "bad val_fraction": ({"train_path": good, "val_fraction": 1.5}, r"data.val_fraction"),
        "bad nan policy": ({"path": good, "nan": "drop"}, r"data.nan: expected one of"),
    }
    return cases


BAD_IDS = ["no such file", "missing arrays", "wrong shape", "mismatched lengths", "one sample", "empty", "infinite",
           "mismatched features", "labels out of range", "negative labels", "regression targets", "not npz",
           "both path and train_path", "test_path with path", "bad split", "bad val_fraction", "bad nan policy"]


@pytest.mark.parametrize("case", BAD_IDS)
def test_bad_files_raise_one_line_naming_the_file_and_fix(case, tmp_path):
    options, pattern = _bad_cases(tmp_path)[case]
    with pytest.raises(DataError, match=pattern) as info:
        load_dataset("npz", **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["missing arrays", "labels out of range", "infinite", "mismatched features"])
def test_search_with_a_bad_file_exits_2_and_writes_nothing(case, tmp_path, capsys):
    import yaml

    from nas.cli import main

    options, pattern = _bad_cases(tmp_path)[case]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"name": "bad", "data": {"name": "npz", **options}, "search": {"trials": 2}}))
    runs = tmp_path / "runs"
    assert main(["search", str(config), "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.") and len(err.strip().splitlines()) == 1
    assert not runs.exists()


def test_table_errors_name_the_column(tmp_path):
    pd = pytest.importorskip("pandas")

    pd.DataFrame({"id": [1, 1, 2, 2], "lab": [0, 0, 1, 1], "f": [0.1, 0.2, 0.3, 0.4]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataError, match=r"a.csv: no label column 'label' .*data.label_column"):
        load_dataset("csv", path=str(tmp_path / "a.csv"))
    pd.DataFrame({"id": [1, 1, 2, 2], "label": [0, 1, 1, 1], "f": [0.1, 0.2, 0.3, 0.4]}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"b.csv: sequence 1 has several labels"):
        load_dataset("csv", path=str(tmp_path / "b.csv"))
    pd.DataFrame({"id": [1, 2], "label": [0, 1], "f": ["a", "b"]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataError, match=r"c.csv: feature column 'f' is not numeric"):
        load_dataset("csv", path=str(tmp_path / "c.csv"))
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(DataError, match=r"d.csv: cannot be read"):
        load_dataset("csv", path=str(tmp_path / "d.csv"))


# ---- UEA/UCR sets shipped with aeon ------------------------------------------------------------------
def test_uea_basic_motions_official_split():
    pytest.importorskip("aeon")
    data = load_dataset("uea", dataset="BasicMotions")
    assert (data.task.input_size, data.task.seq_len, data.task.output_size) == (6, 100, 4)
    assert (len(data.train), len(data.val), len(data.test)) == (32, 8, 40)
    assert np.bincount(data.val.y.numpy()).tolist() == [2, 2, 2, 2]  # stratified: 10 per class in TRAIN
    assert data.task.standardized and not data.task.variable_length
    assert data.sources["test"] == "official BasicMotions_TEST.ts"


def test_uea_variable_length_set_and_unknown_names():
    pytest.importorskip("aeon")
    data = load_dataset("uea", dataset="PickupGestureWiimoteZ")
    assert data.task.variable_length and data.train.lengths is not None
    assert int(max(s.lengths.max() for s in (data.train, data.val, data.test))) == data.task.seq_len
    with pytest.raises(DataError, match=r"'Nope' is not a UEA/UCR set shipped with aeon; choose one of \[.*BasicMotions"):
        load_dataset("uea", dataset="Nope")


# ---- end to end --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_search_on_user_files_with_an_official_test_split(ray_cluster, tmp_path, monkeypatch, capsys):
    """A real search on right-padded npz files given by relative paths: trials train in Ray's trial
    directories, the study records the splits, and `nas status` prints them."""
    import optuna
    import yaml

    from nas.cli import main
    from nas.study import default_storage

    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 10, 90)
    x, y = _sequences(90, steps=9, lengths=lengths)
    monkeypatch.chdir(tmp_path)
    _npz(tmp_path / "train.npz", x[:60], y[:60], lengths=lengths[:60])
    _npz(tmp_path / "test.npz", x[60:], y[60:], lengths=lengths[60:])
    config = {"name": "mine", "data": {"name": "npz", "train_path": "train.npz", "test_path": "test.npz"},
              "space": {"name": "recurrent_cell", "num_nodes": 2, "hidden_sizes": [8]},
              "train": {"epochs": 2}, "search": {"trials": 2, "sampler": "random", "max_concurrent": 2}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    assert main(["search", "mine.yaml", "--runs-dir", "runs"]) == 0
    study = optuna.load_study(study_name="mine", storage=default_storage(tmp_path / "runs" / "mine"))
    assert study.user_attrs["data_splits"]["test"] == {"size": 30, "source": "official test.npz"}
    complete = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2, [t.user_attrs.get("error") for t in study.get_trials()]
    assert all(0 <= t.user_attrs["test_score"] <= 1 for t in complete)
    capsys.readouterr()
    assert main(["status", "mine", "--runs-dir", "runs"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "data: train 48 (train.npz less the validation split), validation 12 (20% of train.npz, stratified), " \
           "test 30 (official test.npz)" in out
    assert "test acc: test split (30 sequences: official test.npz), never used to select" in out
    assert main(["report", "mine", "--runs-dir", "runs"]) == 0
    report = (tmp_path / "runs" / "mine" / "report" / "report.md").read_text()
    assert "Data: train 48 (train.npz less the validation split), validation 12" in report
    assert "test acc: test split (30 sequences: official test.npz), never used to select" in report


def test_real_valued_targets_make_a_regression_task_scored_by_mse(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 6, 2)).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x[:50], y=x[:50, :, 0].sum(1))
    np.savez(tmp_path / "test.npz", x=x[50:], y=x[50:, :, 0].sum(1))
    data = load_dataset("npz", train_path=str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"),
                        target="value", val_fraction=0.2)
    assert data.task.objective == "regress" and data.task.output_size == 1
    assert (len(data.train), len(data.val), len(data.test)) == (40, 10, 10)
    assert data.sources["val"].endswith("random") and data.scoring().name == "mse"
    assert torch.allclose(data.test.y.squeeze(-1).double(), torch.as_tensor(x[50:, :, 0].sum(1)).double(), atol=1e-5)
    train_rows = {tuple(r) for r in data.train.x.reshape(len(data.train), -1).tolist()}
    assert not train_rows & {tuple(r) for r in data.val.x.reshape(len(data.val), -1).tolist()}


def test_bad_real_targets_name_the_file_and_the_fix(tmp_path):
    x = np.zeros((10, 4, 1), dtype=np.float32)
    y = np.arange(10, dtype=np.float64) + 0.5
    y[3] = np.inf
    np.savez(tmp_path / "inf.npz", x=x, y=y)
    with pytest.raises(DataError, match=r"inf.npz: 1 targets are NaN or infinite \(first: sequence 3\)"):
        load_dataset("npz", path=str(tmp_path / "inf.npz"), target="value")
    np.savez(tmp_path / "real.npz", x=x, y=np.arange(10) + 0.5)
    with pytest.raises(DataError, match="set data.target: value"):
        load_dataset("npz", path=str(tmp_path / "real.npz"))
    with pytest.raises(DataError, match="data.target: expected class"):
        load_dataset("npz", path=str(tmp_path / "real.npz"), target="regress")
