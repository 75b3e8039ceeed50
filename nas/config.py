"""Search configuration: YAML validated into dataclass-like pydantic models with clear errors.

Every mistake (unknown key, wrong type, out-of-range value, an option a space, dataset, sampler or
stopping policy does not take, a space whose cells cannot be trained) raises `ConfigError` with one
line per problem naming the key and what is allowed. Each registry checks its own options
(`search_spaces.SPACES` by the space's fields, `workers.data.LOADERS` by the loader's signature,
`nas.proposers.check_options`, `workers.stopping.check_options`); this module asks them all, and
nothing is written before a config validates. A new section key is one field of its model; the
``train`` and ``hyper`` models are the ones the workers read (`workers.settings`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import inspect
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas.errors import ConfigError
from workers.safe_yaml import YamlInputError, load_yaml
from workers.settings import HyperSettings, Section, TrainConfig

__all__ = ["Config", "ConfigError", "changed_keys", "load_config", "parse_config"]

_Section = Section
# not part of a study's identity: how many trials, where and how fast they run, what is kept
NOT_FINGERPRINTED = {"search": ("trials", "max_concurrent", "storage", "artifacts", "cpus_per_trial",
                                "gpus_per_trial", "max_failures", "confirm", "confirm_top", "time_budget_s"),
                     "train": ("keep_checkpoints",)}


def _registry_name(registry: str, name: str) -> str:
    """Ask ``registry`` (a module with ``check_options``, imported only now) whether it knows ``name``."""
    importlib.import_module(registry).check_options(name, {})
    return name


def _registry_options(registry: str, name: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Ask ``registry`` whether ``name`` takes ``options`` (None: the name itself was refused)."""
    if name is not None:
        importlib.import_module(registry).check_options(name, options)
    return options


class DataSection(_Section):
    """Which dataset candidates train on; extra keys are the loader's options (seed, path, n, ...)."""

    model_config = ConfigDict(extra="allow")
    name: str = "digits-seq"

    @model_validator(mode="after")
    def _check_loader(self) -> DataSection:
        from workers.data import LOADERS, resolve_paths

        if self.name not in LOADERS:
            raise ValueError(f"unknown dataset {self.name!r}; choose one of {sorted(LOADERS)}")
        allowed = list(inspect.signature(LOADERS[self.name]).parameters)
        for key in self.options():
            if key not in allowed:
                raise ValueError(f"unknown option {key!r} for dataset {self.name!r}; allowed: {allowed}")
        self.__pydantic_extra__.update(resolve_paths(self.options()))  # trials run in other directories
        return self

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SpaceSection(_Section):
    """The search space by name; extra keys are the space's options."""

    model_config = ConfigDict(extra="allow")
    name: str = "recurrent_cell"

    @model_validator(mode="after")
    def _check_space(self) -> SpaceSection:
        import numpy as np

        import search_spaces
        from search_spaces.activations import ExpressionError

        if self.name not in search_spaces.SPACES:
            raise ValueError(f"unknown search space {self.name!r}; choose one of {sorted(search_spaces.SPACES)}")
        cls = search_spaces.SPACES[self.name]
        allowed = [f.name for f in dataclasses.fields(cls) if f.init] if dataclasses.is_dataclass(cls) else []
        for key in self.options():
            if allowed and key not in allowed:
                raise ValueError(f"unknown option {key!r} for space {self.name!r}; allowed: {allowed}")
        try:
            space = self.make()
            cell = space.decode(space.sample_params(np.random.default_rng(0)))
        except (ValueError, TypeError, ExpressionError) as exc:
            raise ValueError(f"space {self.name!r}: {exc}") from exc
        if not isinstance(cell, search_spaces.Spec):
            raise ValueError(
                f"space {self.name!r} proposes {type(cell).__name__} cells, which a search cannot train "
                "(they are looked up in a table); compare proposers on it with `nas benchmark`"
            )
        return self

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def make(self, **overrides: Any) -> Any:  # a search_spaces.SearchSpace
        import search_spaces

        return search_spaces.get_space(self.name, **{**self.options(), **overrides})


class SearchSection(_Section):
    trials: int = Field(30, ge=1, le=1_000_000)
    sampler: str = "tpe"
    sampler_options: dict[str, Any] = Field(default_factory=dict)
    max_concurrent: int | None = Field(None, ge=1)
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_failures: int = Field(2, ge=0)
    storage: str | None = None
    artifacts: str | None = None  # Ray's storage_path for trial folders; default: the run directory
    # known cells enqueued first (None: every known cell the space can express; []: none)
    baselines: list[str] | None = None
    time_budget_s: float | None = Field(None, gt=0)  # stop proposing after this long; running trials finish
    confirm: int = Field(0, ge=0, le=100)  # retrain the top front cells and the baselines with K more seeds
    confirm_top: int = Field(3, ge=1)  # how many found cells are confirmed (non-dominated order)

    @property
    def threads_per_trial(self) -> int:
        """Torch threads a trial trains with (its whole CPUs, at least one); `nas import` uses the same,
        since the thread count changes how float sums are split, and so the curve."""
        return max(1, int(self.cpus_per_trial))

    @field_validator("baselines")
    @classmethod
    def _known_baselines(cls, value: list[str] | None) -> list[str] | None:
        from search_spaces import NAMED

        unknown = [name for name in value or () if name not in NAMED]
        if unknown:
            raise ValueError(f"unknown cell(s) {unknown}; named cells: {sorted(NAMED)}")
        return value

    _known_sampler = field_validator("sampler")(lambda v: _registry_name("nas.proposers", v))
    _sampler_options = field_validator("sampler_options")(
        lambda v, info: _registry_options("nas.proposers", info.data.get("sampler"), v))


class StoppingSection(_Section):
    """The early-stopping policy (`workers.stopping.POLICIES`) and its options."""

    policy: str = "none"
    options: dict[str, Any] = Field(default_factory=dict)

    _known_policy = field_validator("policy")(lambda v: _registry_name("workers.stopping", v))
    _policy_options = field_validator("options")(
        lambda v, info: _registry_options("workers.stopping", info.data.get("policy"), v))


class Config(_Section):
    """A whole search: ``name``, ``seed``, and the sections below."""

    name: str = Field("search", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
    seed: int = Field(0, ge=0)
    data: DataSection = Field(default_factory=DataSection)
    space: SpaceSection = Field(default_factory=SpaceSection)
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchSection = Field(default_factory=SearchSection)
    stopping: StoppingSection = Field(default_factory=StoppingSection)
    hyper: HyperSettings = Field(default_factory=HyperSettings)

    @model_validator(mode="after")
    def _check_stopping_values(self) -> Config:
        """Build the stopper once, so that a bad option value is refused here, not mid-search."""
        from workers.stopping import make_scheduler

        try:
            make_scheduler(self.stopping.policy, max_epochs=self.train.epochs, options=self.stopping.options)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"stopping.options: {exc}") from None
        return self

    @model_validator(mode="after")
    def _baselines_in_space(self) -> Config:
        names = self.search.baselines
        if names:
            cells = self.space.make().known_cells(names)
            missing = [n for n in names if not any(tag.startswith(f"{n}-h") for tag in cells)]
            if missing:
                raise ValueError(
                    f"search.baselines: space {self.space.name!r} cannot express {missing} at any of its hidden "
                    "sizes; use space 'gated' (it holds every named cell) or drop them"
                )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def fingerprint(self) -> str:
        """Hash of what defines the study's trials (not its name, budget, storage or concurrency)."""
        data = self.to_dict()
        data.pop("name")
        for section, keys in NOT_FINGERPRINTED.items():
            for key in keys:
                data[section].pop(key)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted keys (``section.key``, ``seed``) whose values differ between two config mappings."""
    sections = ("data", "space", "train", "stopping", "search", "hyper")
    changed = [
        f"{section}.{key}"
        for section in sections
        for key in sorted(set(old.get(section) or {}) | set(new.get(section) or {}))
        if (old.get(section) or {}).get(key) != (new.get(section) or {}).get(key)
    ]
    return changed + (["seed"] if old.get("seed") != new.get("seed") else [])


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Allowed keys at ``loc`` (a path of field names) inside ``model``."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _format_errors(error: ValidationError, source: str) -> str:
    lines = []
    for err in error.errors():
        loc = tuple(p for p in err["loc"] if not isinstance(p, int) or True)
        path = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            allowed = _field_names(Config, loc[:-1])
            lines.append(f"{path}: unknown key; allowed keys here: {', '.join(allowed)}")
        elif err["type"] == "literal_error":
            lines.append(f"{path}: {err['msg'].replace('Input should be', 'must be')} (got {err['input']!r})")
        elif err["type"] == "value_error":
            message = err["msg"].removeprefix("Value error, ")
            lines.append(message if not loc else f"{path}: {message}")
        else:
            lines.append(f"{path}: {err['msg']} (got {err.get('input')!r})")
    return f"invalid config {source}:\n  " + "\n  ".join(lines)


def parse_config(data: Any, source: str = "<dict>") -> Config:
    """Validate a config mapping; raise `ConfigError` naming each bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping of keys, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def load_config(path: str | Path, **overrides: Any) -> Config:
    """Read and validate a YAML config file. ``overrides`` are dotted keys, e.g. ``{"search.trials": 5}``."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {str(file)!r} does not exist")
    try:
        data = load_yaml(file)  # bounded: bytes, elements after alias expansion, nesting; UTF-8 only
    except YamlInputError as exc:
        raise ConfigError(f"invalid config {exc}") from None
    data = data if data is not None else {}
    if isinstance(data, dict):
        data.setdefault("name", file.stem)
        for dotted, value in overrides.items():
            if value is None:
                continue
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return parse_config(data, str(file))
