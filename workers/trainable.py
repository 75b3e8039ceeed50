"""The Ray Tune function trainable: train one candidate, report every epoch, checkpoint every epoch.

With ``train.eval_seeds: K`` the candidate is K seeded runs (`workers.ensemble`): every report is their
mean, the checkpoint holds all K, and ``seed_runs`` carries the per-seed values.

Its config is a `workers.trial.TrialConfig` as a dict (set by `nas.ray_bridge.StudySearcher`). A
candidate that raises or diverges reports one final result with ``error`` set and ends
normally, so its trial is recorded as failed and the search goes on; a crashed worker process is
Ray's to retry, from the last epoch checkpoint. A checkpoint that is gone restarts the candidate
from scratch (``restart`` in its reports says why) instead of failing it.
"""

from __future__ import annotations

import json
import tempfile
import traceback
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from search_spaces import Spec
from workers.data import Dataset, load_dataset
from workers.ensemble import SEED_RUNS, SeedEnsemble, make_trainer, seed_runs
from workers.faults import maybe_die
from workers.hyper_bridge import init_state
from workers.run_dir import TRAINER_FILE
from workers.trial import TrialConfig
from workers.training import EpochResult, Trainer


def _restore(trainer: Trainer | SeedEnsemble, resume_checkpoint: str | None) -> str | None:
    """Continue from Ray's checkpoint of this trial (a retried process), or else from the
    checkpoint of the interrupted trial this one continues (``resume_checkpoint``). A checkpoint
    that is gone or unreadable costs the epochs it held, not the candidate: the returned note says
    why the trainer must start from scratch; None when restored or there was nothing to restore."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None and not resume_checkpoint:
        return None
    where = "Ray's trial checkpoint" if checkpoint is not None else str(resume_checkpoint)
    try:
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                state = torch.load(Path(directory) / TRAINER_FILE, weights_only=False)
        else:
            state = torch.load(Path(resume_checkpoint) / TRAINER_FILE, weights_only=False)
        trainer.load_state_dict(state)
    except Exception as exc:
        return f"restarted from scratch: cannot restore the checkpoint in {where} ({type(exc).__name__}: {exc})"
    return None


def _report(trainer: Trainer | SeedEnsemble, metrics: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        torch.save(trainer.state_dict(), Path(directory) / TRAINER_FILE)
        maybe_die("worker_checkpoint")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def train_candidate(config: dict[str, Any], data: Dataset | None = None) -> None:
    """Ray Tune function trainable for one candidate: ``config`` is a `TrialConfig` dict.

    ``data``: the dataset ``config["data"]`` names, when the search hands it over (loaded once by the
    driver and shared through Ray's object store with `tune.with_parameters`: a worker then neither
    reads the files nor imports their readers, and a node of a cluster needs no copy of them); else
    it is loaded here."""
    try:
        trial = TrialConfig.from_dict(config)
        torch.set_num_threads(trial.threads)
        spec = Spec.from_json(trial.spec)
        data = data if data is not None else load_dataset(**trial.data)
        trainer = make_trainer(spec, data, trial.train, seed=trial.seed,  # K seeds when train.eval_seeds > 1
                               init_state=init_state(trial.hyper, spec, data.task))  # hypernetwork warm start
        note = _restore(trainer, trial.resume)
        if note is not None:  # a half-loaded trainer is not trusted: build it afresh
            trainer = make_trainer(spec, data, trial.train, seed=trial.seed,
                                   init_state=init_state(trial.hyper, spec, data.task))
    except Exception as exc:  # a candidate that cannot even be built fails its trial only
        tune.report({"error": _describe(exc), "epoch": 0})
        return
    restored_from = trainer.epoch
    node = ray.get_runtime_context().get_node_id()

    def report(result: EpochResult) -> None:
        best = trainer.best
        _report(
            trainer,
            {
                **result.to_dict(),
                "best_score": best.score,
                "best_test_score": best.test_score,
                "best_epoch": best.epoch,
                "restored_from_epoch": restored_from,
                "node_id": node,
                "curve": [r.score for r in trainer.history],  # whole, epochs before a resume included
                SEED_RUNS: json.dumps(seed_runs(trainer)),  # as text: Ray would flatten a dict, and warn
                **({"restart": note} if note else {}),
            },
        )

    if trainer.history and trainer.epoch >= trainer.config.epochs:
        report(trainer.history[-1])  # restored after its last epoch: only the final report was lost
        return
    while trainer.epoch < trainer.config.epochs:
        try:
            result = trainer.train_epoch()
        except Exception as exc:
            tune.report({"error": _describe(exc), "epoch": trainer.epoch})
            return
        maybe_die("worker_train")
        report(result)


def _describe(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{where}"
