"""GPU benchmarks of the Triton kernels against cuDNN, torch eager and torch.compile.

Sections (``--only recurrent|activation|sparse``):

* recurrent: an LSTM Spec and random searched cells through `kernels.recurrent.triton` against
  ``torch.nn.LSTM`` (cuDNN), the eager per-step loop (`kernels.recurrent.reference`) and that loop
  under ``torch.compile``; forward and forward + backward.
* activation: generated fused ``act(x + bias)`` against torch eager and ``torch.compile``.
* sparse: block-sparse matmul against the dense masked matmul at several densities.

Times are `triton.testing.do_bench` medians in milliseconds; every row prints its baseline from the
same run. Results go to ``runs/benchmarks/kernels_gpu.json``. Without CUDA the script says so and
exits with status 0 (``--smoke`` instead runs every measured function once on CPU under the Triton
interpreter, tiny shapes, no timings: a check that the script itself works).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _timer(smoke: bool) -> Callable[[Callable[[], object]], float]:
    if smoke:
        return lambda fn: (fn(), float("nan"))[1]
    from triton.testing import do_bench

    return lambda fn: float(do_bench(fn, warmup=25, rep=100, return_mode="median"))


def _fwd_bwd(forward: Callable[[], object], params: list) -> Callable[[], None]:
    def run() -> None:
        for p in params:
            p.grad = None
        out = forward()
        (out[0] if isinstance(out, tuple) else out).float().sum().backward()

    return run


def bench_recurrent(bench, device, dtype, smoke: bool) -> list[dict]:
    import numpy as np
    import torch

    from kernels.recurrent import reference
    from kernels.recurrent import triton as rnn_triton
    from search_spaces import get_space
    from search_spaces.cells import lstm
    from search_spaces.lowering import lower_cell

    configs = [(2, 3, 8, 16)] if smoke else [(64, 128, 128, 64), (256, 256, 128, 128), (32, 512, 64, 32)]
    rows = []
    rng = np.random.default_rng(0)
    for B, T, I, H in configs:
        space = get_space("recurrent_cell", num_nodes=6, hidden_sizes=(H,))
        specs = [("lstm", lstm(H))] + [(f"random{k}", space.sample(rng)) for k in range(2)]
        x = torch.randn(B, T, I, device=device, dtype=dtype)
        for name, spec in specs:
            program = lower_cell(spec, I)
            H_ = program.hidden
            wx = (torch.randn(program.num_x * H_, I, device=device, dtype=dtype) * I**-0.5).requires_grad_()
            w = (torch.randn(len(program.edge_src), H_, H_, device=device, dtype=dtype) * H_**-0.5).requires_grad_()
            b = torch.zeros(program.num_biases, H_, device=device, dtype=dtype, requires_grad=True)
            params = [wx, w, b]

            def ours(program=program, wx=wx, w=w, b=b):
                return rnn_triton.recurrent(program, x @ wx.t(), w, b)

            def eager(program=program, wx=wx, w=w, b=b):
                return reference.recurrent(program, x @ wx.t(), w, b)

            candidates = {"triton": ours, "torch eager loop": eager}
            if not smoke:
                candidates["torch.compile loop"] = torch.compile(eager)
            if name == "lstm":
                cudnn = torch.nn.LSTM(I, H_, batch_first=True).to(device=device, dtype=dtype)
                candidates["cuDNN nn.LSTM"] = lambda cudnn=cudnn: cudnn(x)
                params = params + list(cudnn.parameters())
            for impl, fn in candidates.items():
                with torch.no_grad():
                    fwd = bench(fn)
                both = bench(_fwd_bwd(fn, params))
                rows.append({"section": "recurrent", "cell": name, "B": B, "T": T, "I": I, "H": H_,
                             "impl": impl, "fwd_ms": fwd, "fwd_bwd_ms": both})
    return rows


def bench_activation(bench, device, dtype, smoke: bool) -> list[dict]:
    import torch

    from kernels.activation import triton as act_triton
    from search_spaces.activations import compile_torch
    from search_spaces.lowering import lower_activation

    shape = (8, 16) if smoke else (8192, 4096)
    rows = []
    for text in ("mul(x, sigmoid(x))", "sigmul(tanh(x), abs(x))", "sub(one(x), erf(x))", "gelu"):
        x = torch.randn(*shape, device=device, dtype=dtype, requires_grad=True)
        bias = torch.randn(shape[-1], device=device, dtype=dtype, requires_grad=True)
        tree, fn = lower_activation(text), compile_torch(text)
        candidates = {
            "triton": lambda: act_triton.activation(x, tree, bias),
            "torch eager": lambda: fn(x + bias),
        }
        if not smoke:
            compiled = torch.compile(lambda x, b: fn(x + b))
            candidates["torch.compile"] = lambda: compiled(x, bias)
        for impl, f in candidates.items():
            with torch.no_grad():
                fwd = bench(f)
            rows.append({"section": "activation", "expr": text, "shape": list(shape), "impl": impl,
                         "fwd_ms": fwd, "fwd_bwd_ms": bench(_fwd_bwd(f, [x, bias]))})
    return rows


def bench_sparse(bench, device, dtype, smoke: bool) -> list[dict]:
    import torch

    from kernels.sparse import BlockLayout, reference
    from kernels.sparse import triton as sparse_triton
    from search_spaces import sparsity

    M, N, K = (5, 64, 64) if smoke else (8192, 2048, 2048)
    rows = []
    for density in (0.5, 0.25, 0.125):
        mask = sparsity.make_mask("block", density, (N, K))
        layout = BlockLayout.from_mask(mask, sparsity.block_shape((N, K))).to(torch.device(device))
        x = torch.randn(M, K, device=device, dtype=dtype, requires_grad=True)
        w = (torch.randn(N, K, device=device, dtype=dtype) * mask.to(device)).requires_grad_()
        candidates = {
            "triton block-sparse": lambda: sparse_triton.block_sparse_matmul(x, w, layout),
            "torch masked dense": lambda: reference.block_sparse_matmul(x, w, layout),
        }
        for impl, f in candidates.items():
            with torch.no_grad():
                fwd = bench(f)
            rows.append({"section": "sparse", "density": density, "M": M, "N": N, "K": K, "impl": impl,
                         "fwd_ms": fwd, "fwd_bwd_ms": bench(_fwd_bwd(f, [x, w]))})
    return rows


SECTIONS = {"recurrent": bench_recurrent, "activation": bench_activation, "sparse": bench_sparse}


def _print(rows: list[dict]) -> None:
    keys = [k for k in rows[0] if k not in ("impl", "fwd_ms", "fwd_bwd_ms", "section")]
    print(f"{'section':11s} {' '.join(f'{k}' for k in keys):40s} {'impl':22s} {'fwd ms':>9s} {'fwd+bwd ms':>11s}")
    for r in rows:
        desc = " ".join(str(r.get(k)) for k in keys)
        print(f"{r['section']:11s} {desc:40s} {r['impl']:22s} {r['fwd_ms']:9.3f} {r['fwd_bwd_ms']:11.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--smoke", action="store_true", help="CPU interpreter, tiny shapes, no timings")
    parser.add_argument("--out", default=os.path.join("runs", "benchmarks", "kernels_gpu.json"))
    args = parser.parse_args()
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    if not args.smoke and not torch.cuda.is_available():
        print("kernels_gpu.py: no CUDA device found; nothing was measured (use a GPU machine, or --smoke "
              "to check the script on CPU under the Triton interpreter).")
        return 0
    device = "cpu" if args.smoke else "cuda"
    dtype = torch.float32 if args.smoke else getattr(torch, args.dtype)
    bench = _timer(args.smoke)
    rows: list[dict] = []
    for name in args.only or list(SECTIONS):
        section_rows = SECTIONS[name](bench, device, dtype, args.smoke)
        rows += section_rows
        _print(section_rows)
    if not args.smoke:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "dtype": args.dtype, "torch": torch.__version__,
                       "rows": rows}, f, indent=1)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
