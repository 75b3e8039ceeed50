"""Run a candidate with generated weights: masks, `functional_call`, loss and accuracy.

The hypernetwork package does not import `workers`, so it carries its own tiny loss/accuracy for the
three task objectives, matching `workers.training` (regression counts a hit within 0.04).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

REGRESSION_TOLERANCE = 0.04


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{"cell.weights.<src>": mask}`` of a model from `search_spaces.build`."""
    return {f"cell.weights.{src}": model.cell.mask(src) for src in model.cell.weights.keys()}


def run(model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` with ``params`` in place of its parameters (buffers kept)."""
    return functional_call(model, {**dict(model.named_buffers()), **params}, (x,))


def loss_and_hits(out: torch.Tensor, y: torch.Tensor, objective: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and per-sample correctness, as `workers.training` scores a candidate."""
    if objective == "regress":
        return F.mse_loss(out, y), ((out - y).abs() < REGRESSION_TOLERANCE).all(dim=-1)
    if objective == "lm":
        flat = out.reshape(-1, out.shape[-1])
        return F.cross_entropy(flat, y.reshape(-1)), (out.argmax(-1) == y).float().mean(-1) > 0.5
    return F.cross_entropy(out, y), out.argmax(-1) == y


@torch.no_grad()
def accuracy(
    model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, objective: str, batch_size: int = 512
) -> tuple[float, float]:
    """(accuracy, mean loss) of the candidate with ``params`` on ``x``, ``y``."""
    total, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        loss, hits = loss_and_hits(run(model, params, xb), yb, objective)
        total += float(loss) * len(xb)
        correct += int(hits.sum())
    return correct / len(x), total / len(x)


@torch.no_grad()
def expected_accuracy(
    model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, objective: str, batch_size: int = 512
) -> float:
    """Mean probability the candidate gives the correct label (``lm``: per token): accuracy made smooth.

    Accuracy on a few hundred samples moves in steps of 1/N and ignores how close a wrong answer was;
    cross-entropy is dominated by a few confidently wrong samples. The mean true-label probability is
    neither (bounded per sample, continuous), and ranked candidates better than both on digits-seq.
    ``regress`` has no label probability: it scores the hit rate, as `accuracy`.
    """
    if objective == "regress":
        return accuracy(model, params, x, y, objective, batch_size)[0]
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        probs = torch.softmax(run(model, params, xb).float(), dim=-1)
        total += float(probs.gather(-1, yb.unsqueeze(-1)).squeeze(-1).reshape(len(xb), -1).mean(-1).sum())
    return total / len(x)
