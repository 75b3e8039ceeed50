"""A metric's value over a whole split, accumulated batch by batch (`workers.metrics` says which
metric, this computes it): confusion counts for classification, errors for regression, summed
cross-entropy for language models (bits per character and perplexity are token-weighted)."""

from __future__ import annotations

import math

import torch

from workers.metrics import Metric

REGRESSION_TOLERANCE = 0.04  # the adding problem's success criterion: |prediction - target| < 0.04


class Scorer:
    """Accumulates a split's outputs batch by batch and gives the metric over all of them.

    ``add`` takes a batch's model outputs, targets and summed loss; ``value`` the metric over every
    sample (token-weighted for language models), ``loss`` the mean loss per sample (or token).
    """

    def __init__(self, metric: Metric, objective: str, classes: int) -> None:
        self.metric, self.objective, self.classes = metric, objective, classes
        self._loss, self._count = 0.0, 0
        self._confusion = torch.zeros(classes, classes, dtype=torch.long) if objective == "classify" else None
        self._sq, self._abs, self._hits = 0.0, 0.0, 0

    def weight(self, y: torch.Tensor) -> int:
        """What a batch's targets ``y`` count for: its tokens (a language model) or its samples."""
        return y.numel() if self.objective == "lm" else len(y)

    def add(self, out: torch.Tensor, y: torch.Tensor, loss_sum: float) -> None:
        """A batch: ``out`` the model's outputs, ``y`` the targets, ``loss_sum`` its summed loss."""
        self._loss += loss_sum
        self._count += self.weight(y)
        if self._confusion is not None:
            index = y.long() * self.classes + out.argmax(-1)
            self._confusion += torch.bincount(index, minlength=self.classes**2).reshape(self.classes, self.classes)
        elif self.objective == "regress":
            err = (out - y).double()
            self._sq += float((err**2).mean(dim=-1).sum())
            self._abs += float(err.abs().mean(dim=-1).sum())
            self._hits += int((err.abs() < REGRESSION_TOLERANCE).all(dim=-1).sum())

    @property
    def loss(self) -> float:
        return self._loss / self._count if self._count else math.nan

    @property
    def value(self) -> float:
        """The metric over everything added; NaN when nothing was (an empty split)."""
        if not self._count:
            return math.nan
        name = self.metric.name
        if name == "bpc":
            return self.loss / math.log(2)
        if name == "perplexity":
            return math.exp(min(self.loss, 700.0))
        if name in ("mse", "mae"):
            return (self._sq if name == "mse" else self._abs) / self._count
        if self._confusion is None:  # accuracy of a regression: within the tolerance
            return self._hits / self._count
        return confusion_score(name, self._confusion)


def confusion_score(name: str, confusion: torch.Tensor) -> float:
    """Accuracy, balanced accuracy or macro-F1 from a confusion matrix (rows: true, columns:
    predicted), as scikit-learn defines them: balanced accuracy averages the recall of the classes
    present in the targets, macro-F1 the F1 of the classes in the targets or the predictions."""
    c = confusion.double()
    hits = c.diag()
    if name == "accuracy":
        return float(hits.sum() / c.sum())
    support, predicted = c.sum(dim=1), c.sum(dim=0)
    if name == "balanced_accuracy":
        present = support > 0
        return float((hits[present] / support[present]).mean())
    labels = (support > 0) | (predicted > 0)
    # 2 tp / (2 tp + fp + fn) is F1 = 2 precision recall / (precision + recall), 0 where undefined
    f1 = 2 * hits[labels] / (support[labels] + predicted[labels])
    return float(f1.mean())
