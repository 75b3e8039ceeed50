"""Stateful truncated BPTT for language models (Zaremba et al., 2014): training and evaluation on
token streams (`workers.data.text`).

Layout: a split's stream of ``L`` tokens is cut into ``n`` equal columns (``[n, L // n]``, text order
down each column). A training step takes the next ``bptt`` tokens of every column; the hidden state
is carried, detached, from one step to the next and reset to zeros at each epoch start (and when a
pass over the text wraps around). ``steps_per_epoch`` caps the steps of an epoch: the next epoch
goes on from where the last one stopped, so every window is trained on in turn.

Evaluation runs the whole stream with the state carried down `EVAL_COLUMNS` columns, and the few
tokens past the last full column continue from that column's final state: every token is scored
exactly once, and the loss is the mean cross-entropy per token in nats (token-weighted, exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from workers.data import Split
from workers.metrics import Metric
from workers.scoring import Scorer

EVAL_COLUMNS = 16  # columns of a validation/test stream (fixed, so every trial is scored alike)
State = dict[str, torch.Tensor] | None


def columns(split: Split, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of ``split`` as ``[n, L // n]`` columns (the last ``L % n`` tokens left off)."""
    length = len(split) // n
    return split.x[: n * length].view(n, length), split.y[: n * length].view(n, length)


def train_columns(split: Split, batch_size: int, bptt: int) -> int:
    """Columns of the training stream: ``batch_size``, fewer when the text is too short for each to
    hold one window of ``bptt`` steps (at least 1: the loader checks one window fits)."""
    return max(1, min(batch_size, len(split) // bptt))


def windows_per_pass(split: Split, batch_size: int, bptt: int) -> int:
    """Training steps in one pass over ``split`` (the last window of a column may be shorter)."""
    length = len(split) // train_columns(split, batch_size, bptt)
    return math.ceil(length / bptt)


def _detach(state: State) -> State:
    return None if state is None else {k: v.detach() for k, v in state.items()}


def train_epoch(
    model: nn.Module,
    split: Split,
    *,
    batch_size: int,
    bptt: int,
    epoch: int,
    steps: int | None,
    step: Callable[[torch.Tensor], None],
) -> float:
    """Epoch ``epoch`` (0-based) of stateful TBPTT on ``split``: ``steps`` windows (None: one pass),
    continuing where epoch ``epoch - 1`` stopped. ``step(loss)`` does the backward and the update.
    Returns the mean training loss per token in nats."""
    x, y = columns(split, train_columns(split, batch_size, bptt))
    per_pass = windows_per_pass(split, batch_size, bptt)
    steps = per_pass if steps is None else steps
    state: State = None  # reset at each epoch start
    total, count = 0.0, 0
    for k in range(steps):
        window = (epoch * steps + k) % per_pass
        if window == 0:
            state = None  # a new pass starts at the top of the columns
        cols = slice(window * bptt, (window + 1) * bptt)
        logits, state = model.forward_stateful(x[:, cols], state)
        state = _detach(state)
        target = y[:, cols]
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
        step(loss)
        total += float(loss.detach()) * target.numel()
        count += target.numel()
    return total / count


def _pieces(split: Split, columns_n: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, bool]]:
    """(inputs, targets, continues_last_column) blocks covering every token of ``split`` once."""
    n = max(1, min(columns_n, len(split)))
    x, y = columns(split, n)
    yield x, y, False
    if n * x.shape[1] < len(split):
        yield split.x[n * x.shape[1] :].unsqueeze(0), split.y[n * x.shape[1] :].unsqueeze(0), True


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, bptt: int, metric: Metric,
             columns_n: int = EVAL_COLUMNS) -> tuple[float, float]:
    """(``metric``, mean cross-entropy per token in nats) over the whole stream of ``split``, the
    state carried throughout (see the module docstring); NaN for an empty split."""
    if len(split) == 0:
        return math.nan, math.nan
    model.eval()
    scorer = Scorer(metric, "lm", 0)
    state: State = None
    for x, y, continues in _pieces(split, columns_n):
        if continues:  # the tail follows the last column in the text: carry its state on
            state = {k: v[-1:] for k, v in state.items()}  # type: ignore[union-attr]
        else:
            state = None
        for start in range(0, x.shape[1], bptt):
            logits, state = model.forward_stateful(x[:, start : start + bptt], state)
            target = y[:, start : start + bptt]
            flat = logits.reshape(-1, logits.shape[-1])
            scorer.add(logits, target, float(nn.functional.cross_entropy(flat.double(), target.reshape(-1), reduction="sum")))
    return scorer.value, scorer.loss
