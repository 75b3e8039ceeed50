"""Building and loading the C++ engine survive kills, interrupts and several checkouts (issue 19).

Real processes on real caches: a builder killed with SIGKILL mid-build, leftover lock files, two
copies of the package sharing one cache, SIGINT during the build (of the engine alone, and of a
``nas search`` that inherited SIGINT ignored). Each waits with a bound, so a hang fails instead of
stalling the suite; a build takes 20-120 s on 2 busy cores, hence ``slow``. The fast tests check the key.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from _processes import compiling, no_build_left

from kernels.recurrent import native

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 360  # s: one build takes 20-120 s on a loaded 2-core machine
needs_compiler = pytest.mark.skipif(shutil.which(native.compiler()) is None, reason="needs a C++ compiler")

# The engine is available and matches the reference on an LSTM; prints the library it loaded.
CHECK = """
import torch
from kernels.recurrent import native, reference
from search_spaces.cells import lstm
from search_spaces.lowering import lower_cell
from tests.kernels.test_recurrent import make_inputs, run
assert native.available(), native.build_error()
program = lower_cell(lstm(8), 8)
inputs = make_inputs(program, B=2, T=3)
ref, out = run(reference.recurrent, program, inputs), run(native.recurrent, program, inputs)
assert all(torch.allclose(r, o, rtol=1e-9, atol=1e-12) for r, o in zip(ref, out))
print(native._load()[0].__file__)
"""
# Builds (or loads) the engine and nothing else: what a killed or interrupted process was doing.
LOAD = "from kernels.recurrent import native; print(native.available(), native.build_error())"
# The same, logging whether it built, and printing which code ran and which library it loaded.
LOAD_LOGGED = """
import logging
logging.basicConfig(level=logging.INFO)
from kernels.recurrent import native
assert native.available(), native.build_error()
print(native.__file__)
print(native._load()[0].__file__)
"""


def _env(cache: Path, pythonpath: Path = REPO) -> dict[str, str]:
    return dict(os.environ, NAS_KERNEL_CACHE=str(cache), NAS_RECURRENT_CPU="native", PYTHONPATH=str(pythonpath))


def _start(code: str, cache: Path, *, sigint=signal.SIG_DFL, pythonpath: Path = REPO, args=()) -> subprocess.Popen:
    """A Python process in its own session (so a test can end all of it) with SIGINT as given."""
    command = [sys.executable, *args] if args else [sys.executable, "-c", code]
    return subprocess.Popen(
        command, cwd=pythonpath, env=_env(cache, pythonpath), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


def _finish(process: subprocess.Popen, timeout: float) -> str:
    """Its output once it exits within ``timeout`` s; fails (and kills it) when it does not."""
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate()[0]
        pytest.fail(f"still running after {timeout:g} s (hung?); output:\n{output[-3000:]}")


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen) -> None:
    """Poll ``condition`` until it holds; fails after ``timeout`` s, or when ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"exited (rc {process.returncode}) before {what}:\n{process.communicate()[0][-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {timeout:g} s")
        time.sleep(0.1)


def _libraries(cache: Path) -> list[Path]:
    return sorted((cache / "recurrent_native").rglob("*.so"))


@dataclass
class SharedCache:
    cache: Path
    outputs: dict[str, list[str]]  # each checkout's output lines


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> SharedCache:
    """An empty cache that two copies of the package (two checkouts, say a venv's and a CI clone's)
    start loading the engine from at the same moment; it ends up holding the engine."""
    root = tmp_path_factory.mktemp("checkouts")
    cache = root / "cache"
    processes = {}
    for checkout in ("a", "b"):
        shutil.copytree(REPO / "kernels", root / checkout / "kernels", ignore=shutil.ignore_patterns("__pycache__"))
        processes[checkout] = _start(LOAD_LOGGED, cache, pythonpath=root / checkout)
    outputs = {}
    try:
        for checkout, process in processes.items():
            outputs[checkout] = _finish(process, BUILD_TIMEOUT).strip().splitlines()
            assert process.returncode == 0, outputs[checkout]
    finally:
        for process in processes.values():
            _kill(process)
    return SharedCache(cache, outputs)


# ---- the key -------------------------------------------------------------------------------------
def test_build_key_follows_the_source_content_not_its_path(monkeypatch, tmp_path) -> None:
    key = native.build_key()
    copy = tmp_path / "elsewhere" / "native.cpp"
    copy.parent.mkdir()
    shutil.copyfile(native.SOURCE, copy)
    monkeypatch.setattr(native, "SOURCE", copy)
    assert native.build_key() == key  # another checkout: the same build
    copy.write_text(copy.read_text() + "\n// changed\n")
    assert native.build_key() != key


def test_build_key_follows_the_compiler_and_the_flags(monkeypatch) -> None:
    key = native.build_key()
    assert native.build_key(native.FLAG_SETS[1]) != key
    monkeypatch.setenv("CXX", "no-such-compiler-for-nas")
    assert native.build_key() != key


def test_no_compiler_is_one_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("NAS_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler-for-nas")
    module, error = native._load.__wrapped__()
    message = "no C++ compiler: 'no-such-compiler-for-nas' is not on PATH"
    assert module is None and error.count(message) == len(native.FLAG_SETS), error
    assert not _libraries(tmp_path)


def test_an_unusable_cache_is_one_clear_error(monkeypatch, tmp_path) -> None:
    """A cache path that cannot hold directories: the engine is unavailable with a reason naming
    ``$NAS_KERNEL_CACHE`` (the TorchScript path then serves), not a crash."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("NAS_KERNEL_CACHE", str(blocker))
    module, error = native._load.__wrapped__()
    assert module is None and error.count("set $NAS_KERNEL_CACHE to a writable directory") == len(native.FLAG_SETS)


# ---- real processes ------------------------------------------------------------------------------
@pytest.mark.slow
@needs_compiler
def test_a_build_killed_midway_neither_blocks_nor_lingers(tmp_path) -> None:
    """SIGKILL a process while it compiles (an empty cache): its compiler stops, and the next process
    builds the engine in bounded time, leaving one library and no build directory behind."""
    cache = tmp_path / "cache"
    victim = _start(LOAD, cache)
    try:
        _wait_for(lambda: compiling(cache), BUILD_TIMEOUT, "compiler started", victim)
        time.sleep(2)
        victim.kill()  # SIGKILL: no handler, no cleanup of its own
        victim.wait()
    finally:
        _kill(victim)
    no_build_left(cache)
    started = time.monotonic()
    output = _finish(_start(CHECK, cache), BUILD_TIMEOUT)
    assert [str(p) for p in _libraries(cache)] == [output.strip().splitlines()[-1]]
    assert not list((cache / "recurrent_native").glob("*/build-*")), "the killed build's directory was not removed"
    print(f"build after a killed one: {time.monotonic() - started:.1f} s")


@pytest.mark.slow
@needs_compiler
def test_leftover_locks_never_block_loading_a_built_engine(shared_cache, monkeypatch) -> None:
    """On a filled cache: loaders killed midway, torch's lock file left behind, and the build lock
    held by another process all leave the next load instant (it takes no lock)."""
    cache = shared_cache.cache
    monkeypatch.setenv("NAS_KERNEL_CACHE", str(cache))
    for delay in (0.5, 1.0, 1.5):
        loader = _start(LOAD, cache)
        time.sleep(delay)
        _kill(loader)
    key_dir = Path(native.build_dir())
    (key_dir / "lock").touch()  # what torch's builder leaves when its loader is killed
    with open(key_dir / "build.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        output = _finish(_start(CHECK, cache), 90)
    assert output.strip().splitlines()[-1] in map(str, _libraries(cache))
    print(f"load past leftover locks: {time.monotonic() - started:.1f} s")


@pytest.mark.slow
@needs_compiler
def test_two_checkouts_share_one_build(shared_cache) -> None:
    """Two checkouts loading at once build the engine once (the other waits, or finds it built) and
    load the same library; a third checkout loads it too, without rebuilding: the cache is keyed by
    the source's content, not by where it lives."""
    (library,) = _libraries(shared_cache.cache)
    builds = [line for lines in shared_cache.outputs.values() for line in lines if "built the C++ CPU engine" in line]
    assert len(builds) == 1, shared_cache.outputs
    waited = [c for c, lines in shared_cache.outputs.items() if any("waiting for another process" in x for x in lines)]
    print(f"{builds[0]}; waited on the build lock: {waited or 'none (found it built)'}")
    for checkout, lines in shared_cache.outputs.items():
        assert f"/{checkout}/kernels/" in lines[-2] and lines[-1] == str(library)  # that copy's code ran
    before = library.stat()
    third = _finish(_start(LOAD_LOGGED, shared_cache.cache), 90)
    assert "built the C++ CPU engine" not in third and third.strip().splitlines()[-1] == str(library)
    after = library.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "the engine was rebuilt"
    assert _libraries(shared_cache.cache) == [library]


@pytest.mark.slow
@needs_compiler
def test_sigint_during_the_build_stops_it_at_once(tmp_path) -> None:
    """SIGINT while compiling: KeyboardInterrupt promptly, the compiler stopped, nothing half-built."""
    cache = tmp_path / "cache"
    process = _start(LOAD, cache)
    try:
        _wait_for(lambda: compiling(cache), BUILD_TIMEOUT, "compiler started", process)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        output = _finish(process, 20)
    finally:
        _kill(process)
    assert process.returncode != 0 and "KeyboardInterrupt" in output, output
    print(f"exited {time.monotonic() - sent:.1f} s after SIGINT")
    no_build_left(cache)
    assert not _libraries(cache) and not list((cache / "recurrent_native").glob("*/build-*"))


@pytest.mark.slow
@needs_compiler
def test_nas_search_interrupted_during_the_build_exits_130(tmp_path) -> None:
    """``nas search`` started with SIGINT ignored (a script's ``nas search ... &``) and interrupted
    during the engine build exits 130 promptly, leaving no compiler and no broken study."""
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    args = ("-m", "nas.cli", "search", "configs/quickstart.yaml", "--runs-dir", str(runs))
    process = _start("", cache, sigint=signal.SIG_IGN, args=args)
    try:
        _wait_for(lambda: compiling(cache), BUILD_TIMEOUT, "compiler started", process)
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        sent = time.monotonic()
        output = _finish(process, 60)
    finally:
        _kill(process)
    assert process.returncode == 130, output
    print(f"nas search exited {time.monotonic() - sent:.1f} s after SIGINT")
    no_build_left(cache)
    study = runs / "quickstart" / "study.db"
    if study.exists():  # written before the build: it must still open, with no trial left running
        import optuna

        trials = optuna.load_study(study_name="quickstart", storage=f"sqlite:///{study}").trials
        assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
