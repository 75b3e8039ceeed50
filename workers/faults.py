"""A testing hook for fault injection: ``NAS_FAULT=POINT:N`` kills the process the Nth time it
reaches ``POINT``, with SIGKILL (as ``kill -9`` or the OOM killer would: no handler, no cleanup).

The product calls `maybe_die` at the moments a kill is most likely to corrupt something; the fault
tests (``tests/nas/test_kill_matrix.py``) run a real search with ``NAS_FAULT`` set, then check that
``nas resume`` loses and repeats nothing. The points (`POINTS`):

- in the driver: ``startup`` (config.yaml written, no study yet), ``study`` (the study created, no
  trial yet), ``propose`` (a trial asked, its proposal not yet recorded), ``train`` (a trial's epoch
  result arrives), ``checkpoint`` (the driver's own checkpoint, the curve stopper's state, written
  to its temporary name, not yet renamed into place), ``tell`` (a finished trial's attributes written, its state not yet told);
- in a trial's worker process: ``worker_train`` (an epoch trained, not yet reported) and
  ``worker_checkpoint`` (the epoch's checkpoint being written, not yet handed to Ray).

Hits are counted per process, or, when ``NAS_FAULT_COUNTS`` names a file, across every process that
shares it (the driver and its Ray workers): then a worker point fires once in the whole run instead
of once in each worker process (and again in the process that retries the trial).

Zero cost when ``NAS_FAULT`` is unset: one dictionary lookup per call. Not for production use.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

POINTS = ("startup", "study", "propose", "train", "checkpoint", "tell", "worker_train", "worker_checkpoint")

_hits = 0  # hits of the point NAS_FAULT names, in this process


def parse(value: str) -> tuple[str, int]:
    """``"POINT:N"`` as (point, n); raises ValueError naming what is wrong."""
    point, _, count = value.partition(":")
    if point not in POINTS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"NAS_FAULT={value!r}: expected POINT:N with N >= 1 and POINT one of {', '.join(POINTS)}")
    return point, int(count)


def maybe_die(point: str) -> None:
    """SIGKILL this process if ``NAS_FAULT`` names ``point`` and this is its Nth hit."""
    value = os.environ.get("NAS_FAULT")
    if not value:
        return
    target, count = parse(value)
    if point != target:
        return
    if _hit() == count:
        os.kill(os.getpid(), signal.SIGKILL)


def _hit() -> int:
    """Count one more hit of the point: in this process, or in the ``NAS_FAULT_COUNTS`` file."""
    global _hits
    shared = os.environ.get("NAS_FAULT_COUNTS")
    if not shared:
        _hits += 1
        return _hits
    import fcntl

    path = Path(shared)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:  # one byte per hit, appended under a lock the kernel drops on death
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(b".")
        f.flush()
        return f.tell()
