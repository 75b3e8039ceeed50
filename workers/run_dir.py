"""`RunDir`: every path of a search run, spelled once.

Layout of a run directory (``runs/<name>/`` by default)::

    config.yaml          the validated config the study was created with
    study.db             the Optuna study (SQLite), unless ``search.storage`` points elsewhere
    proposer/            state of stateful proposers (RNN controller) and of the stopper
      stopper.pkl        the curve stopper's learned state
    hyper.pt             the hypernetwork checkpoint, when ``hyper.enabled``
    ray/                 Ray Tune's experiment folder (``search.artifacts`` moves it)
      trial_<N>/         one trial's logs and epoch checkpoints
        checkpoint_<K>/trainer.pt   the trainer state after an epoch (`TRAINER_FILE`)

Light on purpose (pathlib and yaml only): the command line reads it before importing torch or Ray.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workers.safe_yaml import load_yaml

TRAINER_FILE = "trainer.pt"  # inside every epoch checkpoint directory
RAY_EXPERIMENT = "ray"


@dataclass(frozen=True)
class RunDir:
    """The directory of one search run and the paths inside it."""

    root: Path

    @classmethod
    def of(cls, name: str, runs_dir: str | Path = "runs") -> RunDir:
        """The run directory of study ``name`` under ``runs_dir`` (absolute)."""
        return cls(Path(runs_dir).resolve() / name)

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def study_db(self) -> Path:
        return self.root / "study.db"

    @property
    def storage_url(self) -> str:
        """The default storage: SQLite inside the run directory (one driver, no server)."""
        return f"sqlite:///{self.study_db.resolve()}"

    @property
    def proposer_dir(self) -> Path:
        return self.root / "proposer"

    @property
    def stopper_state(self) -> Path:
        return self.proposer_dir / "stopper.pkl"

    @property
    def hyper_checkpoint(self) -> Path:
        return self.root / "hyper.pt"

    def artifacts(self, storage_path: str | None = None) -> str:
        """Ray's storage_path: ``search.artifacts`` if set, else this directory."""
        return storage_path or str(self.root)

    def exists(self) -> bool:
        """Whether a search has written anything here (its config or its study)."""
        return self.config_file.exists() or self.study_db.exists()

    def read_config(self) -> dict[str, Any] | None:
        """The stored config as a plain mapping (unvalidated), or None when there is none; raises
        `workers.safe_yaml.YamlInputError` for a file that is not UTF-8 YAML of sane size."""
        if not self.config_file.is_file():
            return None
        data = load_yaml(self.config_file)
        return data if isinstance(data, dict) else None

    def write_config(self, data: dict[str, Any]) -> None:
        """Write ``config.yaml`` atomically, once: an existing one (the study's) is kept."""
        if self.config_file.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".yaml.tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, self.config_file)

    def relative(self, path: str) -> str:
        """``path`` relative to this directory when it lies inside it, else unchanged."""
        return str(Path(path).relative_to(self.root)) if Path(path).is_relative_to(self.root) else path

    def checkpoint_file(self, checkpoint: str) -> Path:
        """The trainer file of a checkpoint recorded on a trial (relative to this directory or absolute)."""
        return self.root / checkpoint / TRAINER_FILE


def experiment_dir(storage_path: str) -> str:
    """Where Ray puts trial folders: ``<storage_path>/ray``."""
    return f"{storage_path.rstrip('/')}/{RAY_EXPERIMENT}"


def trial_dir(experiment: str, number: int) -> str:
    """A trial's folder inside Ray's experiment folder (named by its Optuna number)."""
    return f"{experiment}/{trial_name(number)}"


def trial_name(number: int) -> str:
    return f"trial_{number}"


def prune_checkpoints(trial_folder: str, keep: str | None) -> int:
    """Delete a finished trial's epoch checkpoints except ``keep`` (a ``checkpoint_*`` name; None: the
    newest). The kept one holds the last epoch's trainer state and the best epoch's weights, so resume
    and export need nothing else. ``trial_folder`` is a local path or a URI pyarrow understands
    (``s3://``, ``gs://``). Returns how many were deleted."""
    import pyarrow.fs

    if "://" in trial_folder:
        fs, path = pyarrow.fs.FileSystem.from_uri(trial_folder)
    else:
        fs, path = pyarrow.fs.LocalFileSystem(), trial_folder
    found = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    names = sorted(i.base_name for i in found if i.type == pyarrow.fs.FileType.Directory
                   and i.base_name.startswith("checkpoint_"))
    keep = keep if keep in names else (names[-1] if names else None)
    stale = [name for name in names if name != keep]
    for name in stale:
        fs.delete_dir(f"{path.rstrip('/')}/{name}")
    return len(stale)
