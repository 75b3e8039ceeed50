"""Where commands write: create the folder, or refuse in one line (exit 2) before any work is done."""

from __future__ import annotations

import os
from pathlib import Path

from nas.errors import ConfigError


def check_dir(path: str | Path, option: str) -> Path:
    """Refuse (`ConfigError` naming ``option``) a folder that could not be created or written,
    creating nothing: for checks that come before other input is validated."""
    folder = Path(path).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option} {path}: {existing} is a file, in the way of this folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: {existing} is not writable; choose a writable path")
    return Path(path)


def writable_dir(path: str | Path, option: str) -> Path:
    """The folder ``path``, created with its parents; `ConfigError` naming ``option`` when it cannot be."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{option} {folder}: a file is in the way of this folder; choose another path") from None
    except OSError as exc:
        raise ConfigError(f"{option} {folder}: cannot create this folder ({exc.strerror or exc}); "
                          "choose a writable path") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {folder}: the folder is not writable; choose a writable path")
    return folder


def writable_file(path: str | Path, option: str) -> Path:
    """The file ``path`` to be written, its folder created; `ConfigError` when it cannot be written."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{option} {file}: is a folder; give a file name")
    writable_dir(file.parent, option)
    if file.exists() and not os.access(file, os.W_OK):
        raise ConfigError(f"{option} {file}: the file is not writable; choose another path")
    return file
