"""A run directory with a study of hand-made trials (no Ray): for export, plot and report tests.

Trials carry real Specs and costs; accuracies are chosen so the Pareto front is known: trials 0 and 1
are on it, 2 and 3 are dominated, 4 is pruned (with a partial curve), 5 failed. Trial 0 has a
checkpoint whose ``best_state`` is `TRAINED_SEED`-perturbed weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import torch
import yaml
from optuna.trial import TrialState, create_trial

from nas.config import Config, parse_config
from nas.study import default_storage, open_study
from search_spaces import Spec, Task, build, canonical_hash, cost

TASK = Task(input_size=8, seq_len=8, output_size=10)  # digits-seq
# (validation accuracy, MACs) of the complete trials: 0 and 1 on the front, 2 and 3 dominated
OBJECTIVES = {0: (0.91, 5000.0), 1: (0.84, 2000.0), 2: (0.80, 6000.0), 3: (0.70, 7000.0)}
FRONT = [0, 1]
CHECKPOINT = "ray/trial_0/checkpoint_000001"


@dataclass
class FakeRun:
    runs_dir: Path
    run_dir: Path
    config: Config
    study: optuna.Study
    specs: dict[int, Spec]
    trained: dict[str, torch.Tensor]


def trained_state(spec: Spec, task: Task = TASK, seed: int = 5) -> dict[str, torch.Tensor]:
    """Weights that differ from the build seed's (as trained ones would), masks respected."""
    model = build(spec, task, seed=seed)
    model.apply_masks()
    return {k: v.clone() for k, v in model.state_dict().items()}


def fake_run(tmp_path: Path, name: str = "fake") -> FakeRun:
    config = parse_config(
        {
            "name": name,
            "data": {"name": "digits-seq"},
            "space": {"name": "recurrent_cell", "num_nodes": 3, "hidden_sizes": [8, 16]},
            "train": {"epochs": 2},
            "search": {"trials": 6},
        }
    )
    runs_dir = tmp_path / "runs"
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    study = open_study(name, default_storage(run_dir))
    space = config.space.make()
    rng = np.random.default_rng(0)
    by_number = {i: space.sample(rng) for i in range(6)}
    trained = trained_state(by_number[0])
    ckpt = run_dir / CHECKPOINT
    ckpt.mkdir(parents=True)
    torch.save({"best_state": trained, "model": trained, "epoch": 2}, ckpt / "trainer.pt")
    for number, spec in by_number.items():
        c = cost(spec, TASK)
        attrs = {"spec": spec.to_json(), "macs": c["macs"], "params": c["params"], "hash": canonical_hash(spec)}
        if number in OBJECTIVES:
            acc, macs = OBJECTIVES[number]
            attrs |= {"macs": int(macs), "curve": [acc - 0.1, acc], "epochs": 2, "best_epoch": 2,
                      "test_score": acc - 0.01}
            if number == 0:
                attrs["checkpoint"] = CHECKPOINT
            study.add_trial(create_trial(state=TrialState.COMPLETE, values=[acc, macs], user_attrs=attrs))
        elif number == 4:
            attrs |= {"curve": [0.2, 0.3], "epochs": 2}
            study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs=attrs))
        else:
            attrs |= {"error": "CandidateDiverged: training loss became nan"}
            study.add_trial(create_trial(state=TrialState.FAIL, user_attrs=attrs))
    return FakeRun(runs_dir, run_dir, config, study, by_number, trained)
