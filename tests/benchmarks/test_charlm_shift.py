"""The regions of the play-shift check: training text, the rest of its last play, and a new play."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import charlm_shift  # noqa: E402
from workers.data.text import corpus_bytes  # noqa: E402


def test_the_next_play_is_one_training_never_read():
    text = corpus_bytes().decode("utf-8")
    train, same, new = charlm_shift.regions(text, 40_000)
    assert len(same) == len(new) == 40_000
    assert text.startswith(train + same + new)
    assert new.startswith(charlm_shift.NEW_PLAY)  # cut at the blank line before its first speech
    assert "VINCENTIO" not in train + same and "VINCENTIO" in new  # its lead's name: unseen in training
    assert len(train) + len(same) < 0.9 * len(text)  # inside the training split: test plays no part


def test_a_region_longer_than_the_text_before_the_boundary_is_refused():
    with pytest.raises(ValueError, match="--length"):
        charlm_shift.regions(corpus_bytes().decode("utf-8"), 500_000)
