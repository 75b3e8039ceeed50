"""Activation expressions as plain trees, and code generation of their value and derivative.

``kernels`` imports nothing of ours, so expressions arrive here already parsed, as nested tuples:
``("x",)`` is the input and ``(unit, arg, ...)`` applies a unary or binary unit, e.g. Swish is
``("mul", ("x",), ("sigmoid", ("x",)))``. `emit` writes straight-line code for the value and the
derivative (forward mode: one scalar input, so the derivative is a chain of local derivatives) in
terms of helper functions (``_sigmoid``, ``_atan``, ...). Two preludes define those helpers: plain
torch (`TORCH_PRELUDE`) and ``@triton.jit`` (`TRITON_PRELUDE`), so one generator serves the fused CPU
path and the Triton kernels. Numerics follow torch, including its choices at kinks: ``relu'(0) = 0``,
``clamp(max=0)'(0) = 1``, ties of ``max``/``min`` split the gradient in half, ``softplus`` is linear
above 20.

Triton forms of units without an interpreter-safe intrinsic (documented errors, float64):
``tanh`` = 2 sigmoid(2u) - 1 (abs. error ~1e-16); ``asinh`` = sign(u) log(|u| + sqrt(u^2 + 1));
``atan`` by two half-angle reductions to |r| <= tan(pi/16) and an 11-term odd Taylor series (abs.
error < 1e-16 before rounding); ``gelu`` = u/2 (1 + erf(u/sqrt 2)) with ``tl.erf``.
"""

from __future__ import annotations

import hashlib

from kernels.activation.units import DIV_EPS, of_arity

Tree = tuple  # ("x",) | (unit, Tree) | (unit, Tree, Tree)

ONE = "<one>"  # derivative sentinel: d x / d x

# unit -> (value template, local derivative template), from `kernels.activation.units`; {u} is the
# argument, {y} the value. Binary units' rules are in `_emit`.
UNARY_RULES: dict[str, tuple[str, str | None]] = {n: u.rule for n, u in of_arity(1).items()}  # type: ignore[misc]
BINARY_UNITS = tuple(of_arity(2))


def tree_text(tree: Tree) -> str:
    """Canonical text of a tree, ``mul(x, sigmoid(x))``; the cache key of generated kernels."""
    if tree[0] == "x":
        return "x"
    return f"{tree[0]}({', '.join(tree_text(a) for a in tree[1:])})"


def tree_hash(tree: Tree) -> str:
    return hashlib.sha256(tree_text(tree).encode()).hexdigest()[:16]


def is_identity(tree: Tree) -> bool:
    return tree[0] == "x"


class _Emitter:
    """Appends ``name = expression`` lines; fresh names share a prefix so several emits can mix."""

    def __init__(self, lines: list[str], prefix: str) -> None:
        self.lines, self.prefix, self.count = lines, prefix, 0

    def let(self, expr: str) -> str:
        name = f"{self.prefix}{self.count}"
        self.count += 1
        self.lines.append(f"{name} = {expr}")
        return name


def _dmul(local: str, d: str | None, em: _Emitter) -> str | None:
    if d is None:
        return None
    if d == ONE:
        return em.let(local)
    return em.let(f"({local}) * {d}")


def _dadd(a: str | None, b: str | None, em: _Emitter, sign: str = "+") -> str | None:
    if b is None:
        return a
    if a is None:
        return b if sign == "+" else em.let(f"-{_mat(b, em)}")
    return em.let(f"{_mat(a, em)} {sign} {_mat(b, em)}")


def _mat(d: str | None, em: _Emitter) -> str:
    """A derivative as a tensor expression (sentinels materialised)."""
    if d is None:
        return f"_zeros_like({em.root})"  # type: ignore[attr-defined]
    if d == ONE:
        return f"_ones_like({em.root})"  # type: ignore[attr-defined]
    return d


def _emit(tree: Tree, x: str, em: _Emitter, grad: bool) -> tuple[str, str | None]:
    op = tree[0]
    if op == "x":
        return x, ONE
    if op in UNARY_RULES:
        u, du = _emit(tree[1], x, em, grad)
        value_t, local_t = UNARY_RULES[op]
        y = em.let(value_t.format(u=u))
        if not grad or local_t is None:
            return y, None
        return y, _dmul(local_t.format(u=u, y=y), du, em)
    if op not in BINARY_UNITS:
        raise ValueError(f"unknown activation unit {op!r}")
    (a, da), (b, db) = _emit(tree[1], x, em, grad), _emit(tree[2], x, em, grad)
    if op == "add":
        return em.let(f"{a} + {b}"), _dadd(da, db, em) if grad else None
    if op == "sub":
        return em.let(f"{a} - {b}"), _dadd(da, db, em, "-") if grad else None
    if op == "mul":
        y = em.let(f"{a} * {b}")
        return y, _dadd(_dmul(b, da, em), _dmul(a, db, em), em) if grad else None
    if op == "div":
        q = em.let(f"_abs({b}) + {DIV_EPS}")
        y = em.let(f"{a} / {q}")
        if not grad:
            return y, None
        return y, _dadd(_dmul(f"1.0 / {q}", da, em), _dmul(f"{y} * _sign({b}) / {q}", db, em), em, "-")
    if op in ("max", "min"):
        y = em.let(f"_{op}({a}, {b})")
        if not grad or (da is None and db is None):
            return y, None
        win, lose = (">", "<") if op == "max" else ("<", ">")
        ma, mb = _mat(da, em), _mat(db, em)
        return y, em.let(f"_where({a} {win} {b}, {ma}, _where({a} {lose} {b}, {mb}, 0.5 * ({ma} + {mb})))")
    # sigmul: sigmoid(a) * b
    s = em.let(f"_sigmoid({a})")
    y = em.let(f"{s} * {b}")
    if not grad:
        return y, None
    return y, _dadd(_dmul(f"{s} * (1.0 - {s}) * {b}", da, em), _dmul(s, db, em), em)


def emit(tree: Tree, x: str, lines: list[str], *, prefix: str, grad: bool) -> tuple[str, str | None]:
    """Append code computing the activation of variable ``x`` (and its derivative if ``grad``).

    Returns the names (or expressions) of the value and of the derivative; the derivative is
    ``None`` where it is identically zero. Names start with ``prefix``.
    """
    em = _Emitter(lines, prefix)
    em.root = x  # type: ignore[attr-defined]
    value, deriv = _emit(tree, x, em, grad)
    if deriv == ONE:
        deriv = f"_ones_like({x})"
    return value, deriv


TORCH_PRELUDE = '''
import torch

_abs, _exp, _sin, _cos, _tanh, _sigmoid = torch.abs, torch.exp, torch.sin, torch.cos, torch.tanh, torch.sigmoid
_asinh, _atan, _erf, _sqrt, _relu = torch.asinh, torch.atan, torch.erf, torch.sqrt, torch.relu
_max, _min, _where, _zeros_like, _ones_like = torch.maximum, torch.minimum, torch.where, torch.zeros_like, torch.ones_like
_sign, _gelu, _softplus = torch.sign, torch.nn.functional.gelu, torch.nn.functional.softplus


def _gt0(u):
    return (u > 0).to(u.dtype)


def _le0(u):
    return (u <= 0).to(u.dtype)


def _minzero(u):
    return torch.clamp(u, max=0.0)


def _softplus_grad(u):
    return torch.where(u > 20.0, torch.ones_like(u), torch.sigmoid(u))


def _gelu_grad(u):
    return 0.5 * (1.0 + torch.erf(u * 0.7071067811865476)) + u * torch.exp(-0.5 * u * u) * 0.3989422804014327
'''

TRITON_PRELUDE = '''
import triton
import triton.language as tl


@triton.jit
def _abs(u):
    return tl.abs(u)


@triton.jit
def _exp(u):
    return tl.exp(u)


@triton.jit
def _sin(u):
    return tl.sin(u)


@triton.jit
def _cos(u):
    return tl.cos(u)


@triton.jit
def _sqrt(u):
    return tl.sqrt(u)


@triton.jit
def _erf(u):
    return tl.erf(u)


@triton.jit
def _sigmoid(u):
    return tl.sigmoid(u)


@triton.jit
def _tanh(u):
    return 2.0 * tl.sigmoid(2.0 * u) - 1.0


@triton.jit
def _sign(u):
    return tl.where(u > 0, 1.0, tl.where(u < 0, -1.0, 0.0)).to(u.dtype)


@triton.jit
def _asinh(u):
    a = tl.abs(u)
    return _sign(u) * tl.log(a + tl.sqrt(a * a + 1.0))


@triton.jit
def _atan(u):
    a = tl.abs(u)
    inv = a > 1.0
    r = tl.where(inv, 1.0 / tl.maximum(a, 1e-30), a)
    r = r / (1.0 + tl.sqrt(1.0 + r * r))
    r = r / (1.0 + tl.sqrt(1.0 + r * r))
    r2 = r * r
    p = 1.0 / 21.0
    p = 1.0 / 19.0 - r2 * p
    p = 1.0 / 17.0 - r2 * p
    p = 1.0 / 15.0 - r2 * p
    p = 1.0 / 13.0 - r2 * p
    p = 1.0 / 11.0 - r2 * p
    p = 1.0 / 9.0 - r2 * p
    p = 1.0 / 7.0 - r2 * p
    p = 1.0 / 5.0 - r2 * p
    p = 1.0 / 3.0 - r2 * p
    p = 1.0 - r2 * p
    t = 4.0 * r * p
    t = tl.where(inv, 1.5707963267948966 - t, t)
    return _sign(u) * t


@triton.jit
def _relu(u):
    return tl.maximum(u, 0.0)


@triton.jit
def _minzero(u):
    return tl.minimum(u, 0.0)


@triton.jit
def _gt0(u):
    return tl.where(u > 0, 1.0, 0.0).to(u.dtype)


@triton.jit
def _le0(u):
    return tl.where(u <= 0, 1.0, 0.0).to(u.dtype)


@triton.jit
def _softplus(u):
    return tl.where(u > 20.0, u, tl.maximum(u, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(u))))


@triton.jit
def _softplus_grad(u):
    return tl.where(u > 20.0, 1.0, tl.sigmoid(u)).to(u.dtype)


@triton.jit
def _gelu(u):
    return 0.5 * u * (1.0 + tl.erf(u * 0.7071067811865476))


@triton.jit
def _gelu_grad(u):
    return 0.5 * (1.0 + tl.erf(u * 0.7071067811865476)) + u * tl.exp(-0.5 * u * u) * 0.3989422804014327


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _min(a, b):
    return tl.minimum(a, b)


@triton.jit
def _where(c, a, b):
    return tl.where(c, a, b)


@triton.jit
def _zeros_like(u):
    return u * 0.0


@triton.jit
def _ones_like(u):
    return u * 0.0 + 1.0
'''


def load_generated(path: str, name: str) -> object:
    """Import a generated ``.py`` file as a module (Triton's compiler needs real source files)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cache_root() -> str:
    """Where generated kernels and built libraries go: ``$NAS_KERNEL_CACHE`` or ``~/.cache/nas_kernels``."""
    import os

    return os.environ.get("NAS_KERNEL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "nas_kernels")


def write_generated(source: str, stem: str) -> str:
    """Write ``source`` to ``<cache_root()>/<stem>.py`` once (atomic rename) and return the path."""
    import os
    import tempfile

    root = cache_root()
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, f"{stem}.py")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


def generated_module(source: str, stem: str, cache: dict[str, object]) -> object:
    """Write (once) and import a generated module; the file name carries a hash of the source."""
    full = f"{stem}_{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    path = write_generated(source, full)
    module = cache.get(path)
    if module is None:
        module = cache[path] = load_generated(path, full)
    return module
