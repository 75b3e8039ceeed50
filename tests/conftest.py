"""Shared fixtures. Ray: one local cluster per test session (num_cpus=2), started on first use."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster shared by every test that needs one."""
    import logging

    import ray

    if not ray.is_initialized():
        ray.init(
            address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False
        )
    yield ray
    ray.shutdown()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 60.0) -> None:
    import socket
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture
def ray_head_and_worker(tmp_path):
    """A real two-node Ray cluster on 127.0.0.1: `ray start --head` and `ray start --address`,
    one CPU each, both in the foreground (--block) in their own process groups so the test can
    stop exactly these processes. Yields the head's address."""
    import signal
    import subprocess
    import time

    port = free_port()
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats", "--block"]
    logs = tmp_path / "ray-logs"
    logs.mkdir()
    procs = []
    try:
        head = subprocess.Popen(
            ["ray", "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
            stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.append(head)
        _wait_port(port)
        time.sleep(2)
        worker = subprocess.Popen(
            ["ray", "start", f"--address=127.0.0.1:{port}", *common],
            env={**os.environ, "RAY_AUTH_MODE": "token"},  # joining nodes use the head's token
            stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.append(worker)
        time.sleep(6)
        yield f"127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture
def postgres_url(tmp_path_factory):
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's postgresql package), run as the
    `postgres` user because the server refuses root. Yields a URL to an empty database."""
    import shutil
    import subprocess

    pg = _postgres_bin()
    if pg is None or shutil.which("su") is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="nas-pg-"))
    data = base / "data"
    port = free_port()
    as_postgres = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.geteuid() == 0 else ["sh", "-c"]
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
    run = lambda cmd: subprocess.run([*as_postgres, cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(f"{pg}/initdb -D {data} --auth=trust -U postgres >/dev/null")
    run(f"{pg}/pg_ctl -D {data} -l {base}/log -o '-p {port} -k {base} -c listen_addresses=127.0.0.1' -w start")
    try:
        run(f"{pg}/createdb -h 127.0.0.1 -p {port} -U postgres nas")
        yield f"postgresql://postgres@127.0.0.1:{port}/nas"
    finally:
        subprocess.run([*as_postgres, f"{pg}/pg_ctl -D {data} -m immediate stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
