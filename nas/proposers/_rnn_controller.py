"""The RNN controller of Zoph & Le ("Neural Architecture Search with Reinforcement Learning", 2017)
as an Optuna sampler, so it shares studies, storage and tooling with TPE and NSGA-II.

Policy: an LSTM emits the space's active ``decisions()`` one token at a time. The input at each step
is the embedding of the previous token plus an embedding of the decision being made (plus the
sample's objective weights, below); each decision has its own softmax head over its choices, with
ENAS-style ``tanh_constant * tanh(logits / 5)`` bounding (the temperature 5 keeps gradients alive; with
``tanh(logits)`` the policy saturated and stuck in ~100 trials). Decisions whose condition is not met
are skipped, so every sample is a valid assignment for `SearchSpace.decode`.

Learning: REINFORCE, ``loss = -A * log p(cell) - entropy_weight * H``, one Adam step per
``batch_size`` finished trials (in the order they finish; several may be in flight and finish out of
order, the log-probability is taken under the current policy). By default (``advantage="rank"``) the
advantage ``A`` is the reward's centred rank among the last ``1 / (1 - baseline_decay)`` rewards
(fraction it beats minus fraction that beat it, in [-1, 1]): a baseline that a diverged cell (10%
accuracy on NAS-Bench-201) cannot drag down, and invariant to any monotone transform of the objective
(fitness shaping as in NES/CMA-ES). On NAS-Bench-201 CIFAR-10 it lifted the final accuracy by about 0.1
(seeds 100-199: 91.28 -> 91.39; held-out seeds 200-299: 91.22 -> 91.34). ``advantage="baseline"`` is
the original one (Zoph & Le, ENAS): the reward minus a
moving-average baseline, divided by the range of rewards seen. Either is then divided by the moving
RMS of advantages and clipped: learning rates do not depend on whether accuracy is in [0, 1] or percent.

Multi-objective (the choice): every sample draws objective weights ``w ~ Dirichlet(1)``, the policy is
conditioned on ``w`` (a linear map of ``w`` added to each step's input), and the reward is the
``w``-weighted sum of the range-normalised objectives (compute in log scale). The baseline (or
rank) is kept per objective, so the weighted baseline matches the weighted reward exactly. One controller
thus learns a family of policies, one per trade-off, and populates the Pareto front instead of
collapsing to one point. Linear scalarisation reaches the convex hull of the front; the
weights and per-objective baselines are recorded, so this is easy to swap for a Chebyshev reward.

Trials that do not complete are handled explicitly: ``pruned="last_value"`` learns from what a
stopped trial reached (`partial_values`: the best score of its partial curve, or its last
intermediate value, and its cost; for any number of objectives and either direction: a bound of
what it would have reached, not a failure), falling back to ``"penalize"`` (the worst value seen so
far for every objective) only when the trial recorded nothing; ``failed`` is ``"penalize"`` (a cell
that crashes should become less likely) or ``"skip"``.

State (weights, Adam, baselines, pending batch, RNG, learned trial numbers) is written atomically to
``state_dir/rnn_controller.pt`` after every sample and update, and restored on construction, so a
resumed study continues with exactly the policy it had.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import torch
from optuna.trial import TrialState
from torch import nn

from nas.proposers._common import SeenCells, SpaceSampler, oriented, partial_values

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from search_spaces import Decision, SearchSpace

STATE_FILE = "rnn_controller.pt"
STATE_VERSION = 1
_WEIGHTS_ATTR = "rnn_controller:weights"
_CHOICES = ("last_value", "penalize", "skip")


def _legacy_state(rng: np.random.RandomState) -> list[Any]:
    """A RandomState's state as plain, comparable data."""
    name, keys, *rest = rng.get_state()
    return [name, keys.tolist(), *rest]


class _Policy(nn.Module):
    """LSTM over decision tokens; `forward` scores one cell (given tokens) or samples one."""

    def __init__(self, decisions: Sequence[Decision], hidden: int, n_objectives: int) -> None:
        super().__init__()
        sizes = [len(d.choices) for d in decisions]
        self.offsets = [0, *np.cumsum(sizes).tolist()]
        self.token = nn.Embedding(self.offsets[-1] + 1, hidden)  # last row: the start token
        self.step = nn.Embedding(len(decisions), hidden)
        self.pref = nn.Linear(n_objectives, hidden)
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)

    def logits(
        self, i: int, prev: int, weights: torch.Tensor, state: tuple | None, tanh_c: float | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits of decision ``i`` after global token ``prev``, and the new LSTM state."""
        # objective weights centred and scaled, so the trade-off is a strong signal from the start
        x = self.token.weight[prev] + self.step.weight[i] + self.pref((weights - 1.0 / len(weights)) * 10.0)  # (H,)
        h, c = self.lstm(x[None], state)  # (1, H) each
        z = self.heads[i](h)[0]  # (choices,)
        return (z if tanh_c is None else tanh_c * torch.tanh(z / 5.0)), (h, c)  # ENAS: temperature 5


class RNNControllerSampler(SpaceSampler):
    """REINFORCE-trained LSTM controller over a search space's decisions.

    Args:
        space: the `search_spaces.SearchSpace` whose ``decisions()`` are emitted as tokens.
        seed: seeds the initial weights and the sampling RNG.
        state_dir: directory to save state to after every change and restore it from; None: none.
        hidden_size: LSTM width.
        lr: Adam learning rate.
        entropy_weight: weight of the entropy bonus (keeps exploring).
        baseline_decay: decay of the moving-average baseline and of the reward scale; the rank
            advantage compares with the last ``1 / (1 - baseline_decay)`` rewards (10 by default).
        batch_size: finished trials per policy update.
        tanh_constant: bound on the logits (``c * tanh``); None: unbounded.
        advantage_clip: normalised advantages are clipped to ``[-clip, clip]``.
        advantage: ``"rank"`` (default): the reward's centred rank among the recent rewards;
            ``"baseline"``: the reward minus the moving-average baseline (Zoph & Le, ENAS).
        dedup: resample (up to 20 times) a cell the study has already proposed (canonical hash).
        pruned: ``"last_value"``, ``"penalize"`` or ``"skip"`` for pruned trials.
        failed: ``"penalize"`` or ``"skip"`` for failed trials.
        log_compute: learn from ``log`` of the second and later objectives (compute spans decades).

    Example::

        space = search_spaces.get_space("nb201")
        sampler = RNNControllerSampler(space=space, seed=0)
        study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
        study.optimize(lambda t: evaluate(space.suggest(t)), n_trials=100)
    """

    def __init__(
        self,
        *,
        space: SearchSpace,
        seed: int | None = None,
        state_dir: str | os.PathLike | None = None,
        hidden_size: int = 64,
        lr: float = 0.01,
        entropy_weight: float = 1e-3,
        baseline_decay: float = 0.9,
        batch_size: int = 1,
        tanh_constant: float | None = 2.5,
        advantage_clip: float = 3.0,
        advantage: str = "rank",
        dedup: bool = True,
        pruned: str = "last_value",
        failed: str = "penalize",
        log_compute: bool = True,
    ) -> None:
        if not isinstance(hidden_size, int) or hidden_size < 1:
            raise ValueError(f"hidden_size: must be a positive integer, got {hidden_size!r}")
        if not lr > 0:
            raise ValueError(f"lr: must be positive, got {lr!r}")
        if not entropy_weight >= 0:
            raise ValueError(f"entropy_weight: must be >= 0, got {entropy_weight!r}")
        if not 0 <= baseline_decay < 1:
            raise ValueError(f"baseline_decay: must be in [0, 1), got {baseline_decay!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        if tanh_constant is not None and not tanh_constant > 0:
            raise ValueError(f"tanh_constant: must be positive or None, got {tanh_constant!r}")
        if not advantage_clip > 0:
            raise ValueError(f"advantage_clip: must be positive, got {advantage_clip!r}")
        if advantage not in ("rank", "baseline"):
            raise ValueError(f"advantage: must be 'rank' or 'baseline', got {advantage!r}")
        if pruned not in _CHOICES:
            raise ValueError(f"pruned: must be one of {list(_CHOICES)}, got {pruned!r}")
        if failed not in _CHOICES[1:]:
            raise ValueError(f"failed: must be one of {list(_CHOICES[1:])}, got {failed!r}")
        super().__init__(space, seed)
        self._decisions = space.decisions()
        self._index = {d.name: i for i, d in enumerate(self._decisions)}
        self._options = {"hidden_size": hidden_size, "decisions": [(d.name, list(d.choices)) for d in self._decisions]}
        self._hidden = hidden_size
        self._lr = lr
        self._entropy_weight = entropy_weight
        self._decay = baseline_decay
        self._batch_size = batch_size
        self._tanh_c = tanh_constant
        self._clip = advantage_clip
        self._advantage_mode = advantage
        self._window = max(1, round(1.0 / (1.0 - baseline_decay)))  # the baseline's horizon
        self._dedup = dedup
        self._pruned = pruned
        self._failed = failed
        self._log_compute = log_compute
        self._seed = seed
        self._state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None

        self._seen = SeenCells(space)
        self._policy: _Policy | None = None  # built on first use: needs the study's number of objectives
        self._optimizer: torch.optim.Optimizer | None = None
        self._mean: list[float] = []  # per objective: moving-average baseline
        self._lo: list[float] = []  # per objective: worst value seen (the penalty)
        self._hi: list[float] = []  # per objective: best value seen
        self._adv_sq = 0.0  # moving mean square of raw advantages (the step scale)
        self._count = 0  # rewards observed
        self._recent: list[list[float]] = []  # the last rewards, as many as the baseline's horizon
        self._batch: list[tuple[dict[str, Any], list[float], float]] = []  # params, weights, advantage
        self._learned: set[int] = set()  # trial numbers already learned from
        self.updates = 0
        if self._state_path is not None and self._state_path.exists():
            self._load()

    # ----------------------------------------------------------------- Optuna sampler interface


    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        n_obj = len(study.directions)
        self._build(n_obj)
        weights = [1.0] if n_obj == 1 else self._rng.dirichlet(np.ones(n_obj)).tolist()
        seen = self._seen.keys(study) if self._dedup else set()
        params = self._sample(weights)
        for _ in range(50):  # never propose a cell the space rejects, nor (if dedup) a seen one
            if self._decodes(params) and (not seen or self._seen.key(params) not in seen):
                break
            params = self._sample(weights)
        study._storage.set_trial_system_attr(trial._trial_id, _WEIGHTS_ATTR, weights)
        self._save()
        return params

    def _decodes(self, params: dict[str, Any]) -> bool:
        try:
            self._space.validate(self._space.decode(params))
        except Exception:  # SpecError and the spaces' own checks (e.g. unsafe activations)
            return False
        return True


    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if trial.number in self._learned:
            return
        names = {d.name for d in self._decisions}
        params = {k: v for k, v in trial.params.items() if k in names}
        if [d.name for d in self._space.active_decisions(params)] != list(params):
            return  # not a full cell of this space (e.g. failed before suggesting): nothing to learn
        n_obj = len(study.directions)
        self._build(n_obj)
        y = self._reward(study, trial, state, values)
        if y is None:
            return
        weights = trial.system_attrs.get(_WEIGHTS_ATTR) or [1.0 / n_obj] * n_obj
        self._batch.append((params, list(weights), self._advantage(y, weights)))
        self._observe(y)
        self._learned.add(trial.number)
        if len(self._batch) >= self._batch_size:
            self._update()
        self._save()

    # ----------------------------------------------------------------- policy
    def probabilities(
        self, params: dict[str, Any] | None = None, weights: Sequence[float] | None = None
    ) -> dict[str, np.ndarray]:
        """Per active decision, the controller's current distribution over its choices.

        Decisions are walked as in sampling, following the choices in ``params`` where given and the
        most probable ones elsewhere; ``weights`` are the objective weights (default: equal).
        """
        if self._policy is None:
            self._build(len(weights) if weights is not None else 1)
        n_obj = self._policy.pref.in_features
        params = params or {}
        out: dict[str, np.ndarray] = {}

        def pick(d: Decision, z: torch.Tensor) -> int:
            p = out[d.name] = torch.softmax(z, 0).numpy()
            return d.choices.index(params[d.name]) if d.name in params else int(p.argmax())

        with torch.no_grad():
            self._walk(weights if weights is not None else [1.0 / n_obj] * n_obj, pick)
        return out

    def _walk(self, weights: Sequence[float], pick: Callable[[Decision, torch.Tensor], int]) -> dict[str, Any]:
        """Run the policy token by token over the space's active decisions (`SearchSpace.assign`);
        ``pick(decision, logits)`` returns the index chosen at each step. Returns the params."""
        w = torch.tensor(list(weights), dtype=torch.float32)
        prev, state = self._policy.offsets[-1], None

        def choose(d: Decision, _: dict[str, Any]) -> Any:
            nonlocal prev, state
            i = self._index[d.name]
            z, state = self._policy.logits(i, prev, w, state, self._tanh_c)
            k = pick(d, z)
            prev = self._policy.offsets[i] + k
            return d.choices[k]

        return self._space.assign(choose)

    def _sample(self, weights: Sequence[float]) -> dict[str, Any]:
        """One cell drawn from the policy, token by token."""
        def pick(d: Decision, z: torch.Tensor) -> int:
            p = torch.softmax(z.double(), 0).numpy()
            return int(self._rng.choice(len(p), p=p / p.sum()))

        with torch.no_grad():
            return self._walk(weights, pick)

    def _log_prob(self, params: dict[str, Any], weights: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(params) and the summed entropy of the visited decisions, differentiable."""
        logp, entropy = torch.zeros(()), torch.zeros(())

        def pick(d: Decision, z: torch.Tensor) -> int:
            nonlocal logp, entropy
            log_p = torch.log_softmax(z, 0)
            k = d.choices.index(params[d.name])
            logp = logp + log_p[k]
            entropy = entropy - (log_p.exp() * log_p).sum()
            return k

        self._walk(weights, pick)
        return logp, entropy

    def _update(self) -> None:
        """One REINFORCE step on the pending batch."""
        loss = torch.zeros(())
        for params, weights, adv in self._batch:
            logp, entropy = self._log_prob(params, weights)
            loss = loss - adv * logp - self._entropy_weight * entropy
        loss = loss / len(self._batch)
        self._optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self._policy.parameters(), 5.0)
        self._optimizer.step()
        self._batch = []
        self.updates += 1

    # ----------------------------------------------------------------- rewards
    def _reward(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> list[float] | None:
        """The trial's objectives, oriented (larger is better) and transformed; None: do not learn."""
        directions = study.directions
        if state == TrialState.COMPLETE and values is not None:
            return self._transform(oriented(values, directions), directions)
        mode = self._pruned if state == TrialState.PRUNED else self._failed
        if mode == "last_value":
            partial = partial_values(trial, directions)
            if partial is not None:
                return self._transform(oriented(partial, directions), directions)
        if mode == "skip" or not self._lo:
            return None
        return list(self._lo)

    def _transform(self, y: list[float], directions: Sequence[Any]) -> list[float]:
        if not self._log_compute:
            return y
        # compute objectives span decades: compare them in log scale, keeping the orientation
        return [y[0]] + [(1.0 if v > 0 else -1.0) * math.log(max(abs(v), 1e-30)) for v in y[1:]]

    def _advantage(self, y: Sequence[float], weights: Sequence[float]) -> float:
        """The normalised, clipped advantage of reward ``y`` under objective ``weights``.

        ``"rank"``: per objective, the fraction of the recent rewards that ``y`` beats minus the
        fraction that beat it. ``"baseline"``: each objective's distance to its moving-average
        baseline, divided by the range of values seen (including ``y``), so objectives are
        comparable and a collapsing policy does not blow up the scale. The weighted sum is then
        divided by its own moving RMS, so step sizes do not depend on the units of the objectives.
        Updates that RMS; 0 before any reward was seen.
        """
        if self._count == 0:
            return 0.0
        raw = 0.0
        if self._advantage_mode == "rank":
            for k, (v, w) in enumerate(zip(y, weights)):
                past = np.array([r[k] for r in self._recent])
                raw += w * (float(np.mean(past < v)) - float(np.mean(past > v)))  # centred rank in [-1, 1]
        else:
            for k, (v, w) in enumerate(zip(y, weights)):
                spread = max(self._hi[k], v) - min(self._lo[k], v)
                raw += w * (v - self._mean[k]) / spread if spread > 0 else 0.0
        a = self._rate(self._count - 1)
        self._adv_sq = (1 - a) * self._adv_sq + a * raw * raw
        if self._adv_sq <= 0:
            return 0.0
        return float(np.clip(raw / math.sqrt(self._adv_sq), -self._clip, self._clip))

    def _rate(self, n: int) -> float:
        """EMA step after ``n`` observations: a running average until 1/(1-decay) samples."""
        return max(1.0 - self._decay, 1.0 / (n + 1))

    def _observe(self, y: Sequence[float]) -> None:
        """Update the moving-average baselines and the range of values seen (worst = penalty)."""
        if self._count == 0:
            self._mean, self._lo, self._hi = list(y), list(y), list(y)
        else:
            a = self._rate(self._count)
            for k, v in enumerate(y):
                self._mean[k] += a * (v - self._mean[k])
                self._lo[k], self._hi[k] = min(self._lo[k], v), max(self._hi[k], v)
        self._count += 1
        self._recent = [*self._recent, list(y)][-self._window :]

    # ----------------------------------------------------------------- state
    def _build(self, n_objectives: int) -> None:
        if self._policy is not None:
            if self._policy.pref.in_features != n_objectives:
                raise ValueError(
                    f"this controller was built for {self._policy.pref.in_features} objective(s), "
                    f"the study has {n_objectives}"
                )
            return
        gen = torch.Generator().manual_seed(int(self._seed) if self._seed is not None else int(self._rng.integers(2**63)))
        self._policy = _Policy(self._decisions, self._hidden, n_objectives)
        with torch.no_grad():
            for p in self._policy.parameters():
                p.uniform_(-0.1, 0.1, generator=gen)  # ENAS: uniform(-0.1, 0.1)
        self._optimizer = torch.optim.Adam(self._policy.parameters(), lr=self._lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, Adam, baselines, batch, RNG, history."""
        return {
            "version": STATE_VERSION,
            "options": self._options,
            "n_objectives": self._policy.pref.in_features if self._policy is not None else None,
            "policy": self._policy.state_dict() if self._policy is not None else None,
            "optimizer": self._optimizer.state_dict() if self._optimizer is not None else None,
            "mean": self._mean,
            "worst": self._lo,
            "best": self._hi,
            "adv_sq": self._adv_sq,
            "count": self._count,
            "recent": self._recent,
            "batch": self._batch,
            "learned": sorted(self._learned),
            "updates": self.updates,
            "rng": self._rng.bit_generator.state,
            "random_sampler_rng": _legacy_state(self._random._rng.rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"controller state version {state.get('version')!r}, expected {STATE_VERSION}")
        if state["options"] != self._options:
            raise ValueError(
                "saved controller state does not match this space/options "
                f"(saved {state['options']!r}, now {self._options!r})"
            )
        if state["n_objectives"] is not None:
            self._policy = None
            self._build(state["n_objectives"])
            self._policy.load_state_dict(state["policy"])
            self._optimizer.load_state_dict(state["optimizer"])
        self._mean, self._lo, self._hi = list(state["mean"]), list(state["worst"]), list(state["best"])
        self._adv_sq = state["adv_sq"]
        self._recent = [list(r) for r in state.get("recent", [])]
        self._count, self._batch, self.updates = state["count"], list(state["batch"]), state["updates"]
        self._learned = set(state["learned"])
        self._rng.bit_generator.state = state["rng"]
        name, keys, *rest = state["random_sampler_rng"]
        self._random._rng.rng.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))

    def _save(self) -> None:
        if self._state_path is None:
            return
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._state_path.parent, prefix=".rnn_controller.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(self.state_dict(), f)
            os.replace(tmp, self._state_path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _load(self) -> None:
        state = torch.load(self._state_path, map_location="cpu", weights_only=False)
        self.load_state_dict(state)
