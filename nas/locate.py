"""`locate_study`: a run directory is its study. Which study, in which storage, a command means.

``nas resume/status/export/pareto/report NAME`` name a run directory (``RUNS_DIR/NAME``). The study
it holds is found by that name in the storage recorded in the directory (its ``config.yaml``'s
``search.storage``, else its own ``study.db``); a directory renamed after its search still finds its
study by the name the storage knows (the one in its ``config.yaml``). The config the study was
created with is recorded on the study itself (`CONFIG_ATTR`), so an edited ``config.yaml`` is
followed where it changes only how the search runs (trials, concurrency, storage) and refused,
naming the keys, where it would change what the trials are. A directory whose search was stopped
after writing its ``config.yaml`` but before creating its study (`NoStudyYet`) is started by
``nas resume``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.errors import ConfigError
from workers.run_dir import RAY_EXPERIMENT, RunDir
from workers.safe_yaml import YamlInputError

CONFIG_ATTR = "config"  # study user attr: the config (as a mapping) the study was created with
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")  # the same as `nas.config.Config.name`


@dataclass(frozen=True)
class StudyLocation:
    """Where a named study lives."""

    run: RunDir
    name: str  # the study's name in its storage (a renamed directory keeps the old one)
    storage: str
    stored: dict[str, Any]  # the directory's config.yaml as a mapping ({} when there is none)

    @property
    def renamed(self) -> bool:
        return self.name != self.run.root.name


class NoStudyYet(ConfigError):
    """A run directory holding its ``config.yaml`` and nothing else of a search: the search was
    stopped (killed) before it created its study. ``nas resume`` starts it; other commands refuse."""

    def __init__(self, location: StudyLocation) -> None:
        super().__init__(f"{location.run.root} holds no study yet (its search stopped before creating it); "
                         f"`nas resume {location.run.root.name}` starts it")
        self.location = location


def check_name(name: str) -> str:
    """A study name is a directory name: letters, digits, ``_ . -`` (no path separators)."""
    if not NAME_PATTERN.match(name):
        raise ConfigError(f"study name {name!r}: use letters, digits, '_', '.' and '-' (at most 100, "
                          "starting with a letter or digit)")
    return name


def read_stored(run: RunDir) -> dict[str, Any]:
    """The directory's config.yaml as a mapping ({} if missing); bad files are `ConfigError`."""
    try:
        return run.read_config() or {}
    except YamlInputError as exc:
        raise ConfigError(f"the run directory's config is unreadable: {exc}; restore it from the study "
                          "with care, or delete it to use the study alone (`nas status` still works)") from None


def locate_study(name: str, runs_dir: str | Path, storage: str | None = None) -> StudyLocation:
    """The study of run directory ``runs_dir/name`` (``storage`` overrides the recorded one).
    Raises `ConfigError` (exit 2) when there is none, naming what was looked for."""
    from nas.study import make_storage

    run = RunDir.of(check_name(name), runs_dir)
    stored = read_stored(run)
    recorded = (stored.get("search") or {}).get("storage") if isinstance(stored.get("search"), dict) else None
    url = storage or recorded
    stored_name = stored.get("name") if isinstance(stored.get("name"), str) else None
    if url is None:
        if not run.study_db.is_file():
            _check_started(run, stored_name or name, run.storage_url, stored)
            raise ConfigError(f"no study named {name!r} in {runs_dir}/ (looked for {run.study_db})")
        url = run.storage_url
    names = _study_names(make_storage(url))
    if name in names:
        return StudyLocation(run, name, url, stored)
    if stored_name in names:  # the directory was renamed after its search: its study keeps its name
        return StudyLocation(run, stored_name, url, stored)
    if url == run.storage_url and len(names) == 1:  # its own database, one study: that one
        return StudyLocation(run, names[0], url, stored)
    _check_started(run, stored_name or name, url, stored)
    held = ", ".join(sorted(names)[:10]) or "none"
    raise ConfigError(f"no study named {name!r} in {url} (it holds: {held})")


def _check_started(run: RunDir, name: str, url: str, stored: dict[str, Any]) -> None:
    """Raise `NoStudyYet` when ``run`` holds a config.yaml but no trial folder (its study is absent)."""
    if stored and not any((run.root / RAY_EXPERIMENT).glob("trial_*")):
        raise NoStudyYet(StudyLocation(run, name, url, stored))


def _study_names(storage: Any) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def study_config(location: StudyLocation, study: Any) -> Any:  # -> nas.config.Config
    """The validated config of the located study: the directory's ``config.yaml``, refused (exit 2)
    where it differs from the config recorded on the study in what defines its trials; the study's
    record alone when ``config.yaml`` is gone; ``config.yaml`` alone when there is no study yet
    (``study`` None: `NoStudyYet`)."""
    from nas.config import NOT_FINGERPRINTED, changed_keys, parse_config

    recorded = study.user_attrs.get(CONFIG_ATTR) if study is not None else None
    source = str(location.run.config_file)
    if not location.stored:
        if recorded is None:
            raise ConfigError(f"{source} is missing and study {location.name!r} records no config; "
                              "restore config.yaml (the search's YAML with its name)")
        return parse_config({**recorded, "name": location.name}, f"the config recorded on study {location.name!r}")
    config = parse_config({**location.stored, "name": location.name}, source)
    if recorded is not None:
        original = parse_config({**recorded, "name": location.name}, f"the config recorded on study {location.name!r}")
        if original.fingerprint() != config.fingerprint():
            changed = [key for key in changed_keys(original.to_dict(), config.to_dict())
                       if key.split(".")[-1] not in NOT_FINGERPRINTED.get(key.split(".")[0], ())]
            raise ConfigError(
                f"{source} was edited since study {location.name!r} was created (changed: "
                f"{', '.join(changed) or 'unknown'}); undo the edit to continue this study, or start a "
                "new one with `nas search CONFIG --name NEW_NAME`"
            )
    return config
