"""Datasets: shapes, fixed splits, and clear errors for user data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workers.data import DataError, load_dataset


@pytest.mark.parametrize("name", ["digits-seq", "reber", "adding"])
def test_splits_are_fixed_by_seed_and_disjoint(name):
    a, b, c = load_dataset(name, seed=0), load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    total = len(a.train) + len(a.val) + len(a.test)
    assert len(a.train) > len(a.val) > 0 and len(a.test) > 0
    task = a.task
    if task.input_kind == "tokens":
        assert a.train.x.shape[1:] == (task.seq_len,) and int(a.train.x.max()) < task.input_size
    else:
        assert a.train.x.shape[1:] == (task.seq_len, task.input_size)
    if name == "digits-seq":
        assert total == 1797 and task.output_size == 10
    if name != "reber":  # Reber strings repeat by construction; digits and adding samples are distinct
        train, val, test = ({x.numpy().tobytes() for x in split.x} for split in (a.train, a.val, a.test))
        assert len(train) == len(a.train) and not (train & val or train & test or val & test)


def test_reber_labels_depend_on_the_long_range_symbol():
    data = load_dataset("reber", seed=0)
    x, y = data.train.x, data.train.y
    second = torch.stack([row[row > 0][1] for row in x])
    penultimate = x[:, -2]
    assert torch.equal((second == penultimate).long(), y)


def test_adding_targets_are_the_marked_sums():
    data = load_dataset("adding", seed=0, n=50, length=10)
    x, y = data.train.x, data.train.y
    torch.testing.assert_close((x[..., 0] * x[..., 1]).sum(1, keepdim=True), y)
    assert (x[..., 1].sum(1) == 2).all()


def test_npz_user_data(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x=rng.normal(size=(40, 5, 3)).astype(np.float32), y=rng.integers(0, 4, 40))
    data = load_dataset("npz", path=str(path))
    assert data.task.input_size == 3 and data.task.seq_len == 5 and data.task.output_size == 4
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=np.zeros((4, 2)))
    with pytest.raises(DataError, match="must hold arrays 'x' and 'y'"):
        load_dataset("npz", path=str(bad))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("npz", path=str(tmp_path / "missing.npz"))
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("mnist")


def test_digits_read_from_the_shipped_file_equal_scikit_learns_loader():
    from sklearn.datasets import load_digits

    from workers.data.builtin import _digits_table

    digits = load_digits()
    table = _digits_table()
    assert table.shape == (1797, 65)
    assert np.array_equal(table[:, :64], digits.data) and np.array_equal(table[:, 64].astype(int), digits.target)


@pytest.mark.parametrize("name", ["digits-seq", "adding"])
def test_builtin_standardisation_is_opt_in_and_uses_the_training_split(name):
    raw, standardized = load_dataset(name, seed=0), load_dataset(name, seed=0, standardize=True)
    assert not raw.task.standardized and standardized.task.standardized
    assert torch.equal(raw.train.x, standardized.train.x)  # the data stays raw: the model standardises
    steps = raw.train.x.reshape(-1, raw.task.input_size).double()
    np.testing.assert_allclose(standardized.task.input_mean, steps.mean(0).numpy(), rtol=1e-9)
    with pytest.raises(DataError, match="data.standardize: expected true or false"):
        load_dataset(name, standardize="yes")
