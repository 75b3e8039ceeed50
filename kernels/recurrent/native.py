"""The C++ CPU engine of a recurrent cell (``native.cpp``), built once per machine, and its autograd glue.

The fastest CPU path for a searched cell: the step loop, forward and backward, runs in C++ with
the cell's pointwise graph as vectorised loops and one BLAS call per source and step, where the
generated TorchScript path (`fused`) pays an operator dispatch per small op (2-3x the time; see
``benchmarks/cells_cpu.py``). One build serves every cell: a program is passed as a flat list of
integers (`encode`) and decoded once into an ``Engine`` (memoised per program).

The build needs a C++ compiler (``torch.utils.cpp_extension``, about 20 s on 2 cores) and lands in
``$NAS_KERNEL_CACHE/recurrent_native/<key>/`` (default ``~/.cache/nas_kernels``), the key a hash of
the source's content, the flags, the compiler, torch, Python and the CPU, never of the checkout's
path: every checkout and venv of a machine shares one build. It is built with ``-march=native``, or
portable flags where the compiler refuses that. Building and loading survive kills: one process
builds under an ``flock`` (released by the kernel when its holder dies) in a private directory, and
the finished library is renamed into place, then loaded without any lock.

``$NAS_RECURRENT_CPU`` picks the CPU path: ``auto`` (default: this engine if it builds, else
`fused`), ``native`` (fail if it cannot build), ``fused``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kernels.activation.expr import cache_root
from kernels.activation.units import UNITS as ACTIVATION_UNITS
from kernels.recurrent.program import CellProgram
from kernels.recurrent.reference import initial_state, output_grads

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.cpp")
# tuned for this CPU first; a compiler that refuses -march=native (some clang targets) gets the portable set
FLAG_SETS = (("-O3", "-march=native", "-fno-math-errno"), ("-O3", "-fno-math-errno"))
MODES = ("auto", "native", "fused")
COMBINE = {"add": 0, "mul": 1, "sub": 2}
TERM = {"x": 0, "edge": 1, "value": 2}
# activation units as numbered in native.cpp's `Unit` (tests/kernels/test_units.py checks they agree)
UNITS = {name: u.opcode for name, u in ACTIVATION_UNITS.items()}


def mode() -> str:
    """``$NAS_RECURRENT_CPU``: ``auto`` (default), ``native`` or ``fused``."""
    value = os.environ.get("NAS_RECURRENT_CPU", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"NAS_RECURRENT_CPU must be one of {', '.join(MODES)}, got {value!r}")
    return value


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("model name", "flags"))), platform.processor())
    except OSError:
        return platform.processor()


def compiler() -> str:
    """The C++ compiler torch's builder runs: ``$CXX``, else ``c++``."""
    return os.environ.get("CXX", "c++")


@functools.lru_cache(maxsize=4)
def _toolchain(cxx: str) -> str:
    """The compiler's resolved path and version line ("none" without one): a new compiler rebuilds."""
    path = shutil.which(cxx)
    if path is None:
        return "none"
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    return f"{os.path.realpath(path)} {version.splitlines()[0] if version else ''}"


def build_key(flags: tuple[str, ...] = FLAG_SETS[0]) -> str:
    """What a built library depends on: source content, flags, compiler, torch, Python, CPU (never
    where the checkout lives, so every checkout and venv of one machine shares one build)."""
    parts = [SOURCE.read_text(), " ".join(flags), _toolchain(compiler()), torch.__version__, sys.version,
             platform.machine(), _cpu_model()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build_dir(flags: tuple[str, ...] = FLAG_SETS[0]) -> str:
    return os.path.join(cache_root(), "recurrent_native", build_key(flags))


def _module_name(flags: tuple[str, ...]) -> str:
    return f"nas_recurrent_native_{build_key(flags)}"


def library(flags: tuple[str, ...] = FLAG_SETS[0]) -> Path:
    """Where the finished library of ``flags`` lives; it appears there whole (a rename) or not at all."""
    return Path(build_dir(flags)) / f"{_module_name(flags)}.so"


def is_built() -> bool:
    """Whether this machine has the engine built already (loading it is then instant)."""
    return any(library(flags).is_file() for flags in FLAG_SETS)


def _ninja_on_path() -> None:
    """torch's builder runs ``ninja`` from PATH; a venv used without activation has the pip-installed
    one (a dependency) only in its own bin directory."""
    if shutil.which("ninja") is None:
        try:
            import ninja
        except ImportError:
            return
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


# Run in a child process by `_compile`: torch's builder on a private directory, in a process group
# of its own (the child and ninja; ninja runs each compiler in a group of its own and passes SIGTERM
# on to it). SIGTERM to that group stops the build; the child sends it there itself when Linux tells
# it that its parent died (PR_SET_PDEATHSIG), so a builder killed even with SIGKILL leaves no compiler.
_BUILD_SCRIPT = """
import ctypes, os, signal, sys
parent, name, source, directory, *flags = sys.argv[1:]

def stop(*_):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(0, signal.SIGTERM)

signal.signal(signal.SIGTERM, stop)
if sys.platform.startswith("linux"):
    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
if os.getppid() != int(parent):  # the parent died before prctl
    stop()
from torch.utils import cpp_extension
try:
    cpp_extension.load(name=name, sources=[source], extra_cflags=flags, build_directory=directory, verbose=False)
except Exception as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")
"""


def _compile(name: str, source: Path, directory: Path, flags: tuple[str, ...]) -> str | None:
    """Build ``source`` into ``directory/<name>.so`` in a child process (None, or why it failed).

    A child so that an interrupt stops everything at once: any exception here, Ctrl-C included, ends
    the child's process group and with it ninja's compilers. The child also imports the library once,
    so only one that loads is renamed into place, and this process loads it from there alone.
    """
    if shutil.which(compiler()) is None:
        return f"no C++ compiler: {compiler()!r} is not on PATH (install g++, or set $CXX)"
    _ninja_on_path()
    child = subprocess.Popen(
        [sys.executable, "-c", _BUILD_SCRIPT, str(os.getpid()), name, str(source), str(directory), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=directory, start_new_session=True,
    )
    try:
        output, _ = child.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # the child may have ended already
            os.killpg(child.pid, signal.SIGTERM)
        child.wait()
        raise
    if child.returncode == 0:
        return None
    if child.returncode < 0:
        return f"the build process died of signal {-child.returncode}"
    return output.strip()[-1500:]


def _build(flags: tuple[str, ...]) -> str | None:
    """Make ``library(flags)`` exist (None) or say why it could not be built.

    One process builds while the others wait on ``build.lock``, an ``flock`` the kernel releases when
    its holder dies, so a killed build never blocks. The build runs in a fresh directory (a copy of the
    source, so torch's ``build.ninja`` never names a checkout) and its library is renamed into place
    whole; directories a killed builder left behind are removed by the next one.
    """
    try:
        import fcntl
    except ImportError:
        return "building the engine needs a POSIX system (Linux, macOS)"

    directory = Path(build_dir(flags))
    target = library(flags)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = open(directory / "build.lock", "a")
    except OSError as exc:
        return f"cannot build in {directory}: {exc} (set $NAS_KERNEL_CACHE to a writable directory)"
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process building the C++ CPU engine in %s", directory)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():  # built while this process waited
            return None
        for stale in directory.glob("build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=directory))
        started = time.monotonic()
        try:
            shutil.copyfile(SOURCE, work / SOURCE.name)
            error = _compile(_module_name(flags), work / SOURCE.name, work, flags)
            if error is None:
                os.replace(work / target.name, target)
                log.info("built the C++ CPU engine in %.0f s: %s", time.monotonic() - started, target)
            return error
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _import(flags: tuple[str, ...]) -> object:
    """The finished library of ``flags`` as a module (no lock: it is complete once it exists)."""
    spec = importlib.util.spec_from_file_location(_module_name(flags), library(flags))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def _load() -> tuple[object | None, str | None]:
    """(the engine module, None) or (None, why it could not be built); built at most once per machine.

    A library built with any flag set serves; otherwise the flag sets are built in turn.
    """
    errors = []
    built = [flags for flags in FLAG_SETS if library(flags).is_file()]
    if not built:
        log.info("building the C++ CPU engine for recurrent cells in %s (once per machine, about 20 s)", build_dir())
    for flags in built or FLAG_SETS:
        try:
            error = None if flags in built else _build(flags)
            if error is None:
                return _import(flags), None
        except (ImportError, OSError) as exc:  # a full disk, a library that does not load
            error = f"{type(exc).__name__}: {exc}"
        errors.append(f"with {' '.join(flags)}: {error}")
    return None, "; ".join(errors)


def build_error() -> str | None:
    """Why the engine is unavailable (None when it is built or ``NAS_RECURRENT_CPU=fused``)."""
    return None if mode() == "fused" else _load()[1]


def available() -> bool:
    """Whether the CPU path is this engine: the mode allows it and it builds (building it if needed)."""
    if mode() == "fused":
        return False
    module, error = _load()
    if module is None:
        if mode() == "native":
            raise RuntimeError(f"NAS_RECURRENT_CPU=native but the C++ engine did not build: {error}")
        _warn_once(error)
    return module is not None


@functools.lru_cache(maxsize=1)
def _warn_once(error: str) -> None:
    log.warning("C++ CPU engine for recurrent cells unavailable, using the TorchScript path: %s", error)


def _activation_code(tree: tuple, out: list[int]) -> int:
    """Append the instructions of ``tree`` (``unit, a, b`` each) to ``out``; return its register."""
    if tree[0] == "x":
        return 0
    if tree[0] not in UNITS:
        raise ValueError(f"the C++ engine has no activation unit {tree[0]!r}")
    args = [_activation_code(a, out) for a in tree[1:]]
    out += [UNITS[tree[0]], args[0], args[1] if len(args) > 1 else -1]
    return len(out) // 3


def encode(program: CellProgram) -> list[int]:
    """The program as the flat integer list ``Engine`` decodes (layout in native.cpp's constructor)."""
    code = [program.hidden, program.num_states, program.num_x, len(program.edge_src), len(program.ops)]
    code += list(program.edge_src)
    for op in program.ops:
        code += [COMBINE[op.combine], op.bias, len(op.terms)]
        for t in op.terms:
            code += [TERM[t.kind], t.index]
        act: list[int] = []
        _activation_code(op.activation, act)
        code += [len(act) // 3, *act]
    for outs in program.outputs:
        code += [len(outs), *outs]
    return code


@functools.lru_cache(maxsize=256)
def engine(program: CellProgram) -> object:
    """The decoded ``Engine`` of a program (memoised)."""
    module, error = _load()
    if module is None:
        raise RuntimeError(f"the C++ engine is unavailable: {error}")
    return module.Engine(encode(program))


def supports(program: CellProgram, *tensors: torch.Tensor) -> bool:
    """Whether this engine can run the program on these tensors (CPU, float32/float64, known units)."""
    if any(t.is_cuda or t.dtype not in (torch.float32, torch.float64) for t in tensors) or not available():
        return False
    try:
        engine(program)  # memoised: the program is encoded once
    except ValueError:  # an activation unit the engine does not have
        return False
    return True


class NativeRecurrentFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, program, xproj, weights, biases, initial):
        eng = engine(program)
        hs, final, values, pre, proj = eng.forward(xproj, weights, biases, initial)
        ctx.engine, ctx.program = eng, program
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(values, pre, proj, xproj, weights, biases)
        return hs, final

    @staticmethod
    def backward(ctx, dhs, dfinal):
        values, pre, proj, xproj, weights, biases = ctx.saved_tensors
        dhs, dfinal = output_grads(ctx.program, xproj, dhs, dfinal)
        dxp, dW, db, dh0 = ctx.engine.backward(values, pre, proj, xproj, weights, biases, dhs, dfinal)
        return None, dxp, dW, db, dh0


def recurrent(
    program: CellProgram,
    xproj: torch.Tensor,
    weights: torch.Tensor,
    biases: torch.Tensor,
    initial: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as `kernels.recurrent.reference.recurrent`, in the C++ engine."""
    initial = initial_state(program, xproj, weights, biases, initial)
    dtype = xproj.dtype
    if any(t.dtype != dtype for t in (weights, biases, initial)):
        raise ValueError(f"xproj, weights, biases and initial must share a dtype, got "
                         f"{[str(t.dtype) for t in (xproj, weights, biases, initial)]}")
    return NativeRecurrentFunction.apply(
        program, xproj.contiguous(), weights.contiguous(), biases.contiguous(), initial.contiguous()
    )
