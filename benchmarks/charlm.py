"""Character-level language modelling on Tiny Shakespeare: do searched cells beat the LSTM and the GRU?

A search with configs/charlm.yaml's recipe and a fixed wall-time budget (the gated space, the known
cells enqueued first, evolution from them), then the top found cells and every baseline retrained over
``--seeds`` more seeds with the same recipe and number of steps (the search's confirmation; the
protocol of `benchmarks/vs_baselines.py`, whose ``charlm`` task this is). Printed per cell: test bits per
character (mean ± s.d.), MACs, and training characters per second on this machine's CPU engine.

Verdicts against each LSTM and GRU baseline, each checking ONE found cell picked by its confirmed
validation bpc (the test split decides nothing):

- ``<= at <=0.7x``: the found cell with the best validation bpc among those at no more than 0.7x the
  rival's MACs has a mean test bpc at or below the rival's;
- ``-0.03 at <=1x``: the found cell with the best validation bpc at no more than the rival's MACs is
  at least 0.03 bpc better on test, beyond two standard errors of the difference.

    python benchmarks/charlm.py [--minutes 11] [--seeds 3] [--top 4] [--search-seed 0]
    python benchmarks/charlm.py --from benchmarks/results/vs_baselines.json   # reuse that run's charlm task

Writes ``benchmarks/results/charlm.json`` and ``charlm.png`` (test bpc against MACs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import vs_baselines  # noqa: E402
from search_spaces import Spec  # noqa: E402
from workers import lm_training  # noqa: E402
from workers.data import load_dataset  # noqa: E402
from workers.settings import TrainConfig  # noqa: E402
from workers.training import Trainer  # noqa: E402

RESULTS = Path(__file__).parent / "results"
RATIO, MARGIN = 0.7, 0.03


def throughput(spec_json: str, data: dict[str, Any], train: dict[str, Any], steps: int) -> float:
    """Training characters per second of one cell: ``steps`` stateful TBPTT windows (forward,
    backward, update) after one warm-up window, on one thread."""
    import torch

    torch.set_num_threads(1)
    dataset = load_dataset(**data)
    trainer = Trainer(Spec.from_json(spec_json), dataset, TrainConfig.from_dict(train), seed=0)
    bptt, batch = dataset.task.seq_len, train["batch_size"]
    run = lambda n, epoch: lm_training.train_epoch(  # noqa: E731
        trainer.model, dataset.train, batch_size=batch, bptt=bptt, epoch=epoch, steps=n, step=trainer._step)
    run(1, 0)
    start = time.perf_counter()
    run(steps, 1)
    return steps * batch * bptt / (time.perf_counter() - start)


def _se(cell: dict[str, Any]) -> float:
    return cell["test_sd"] / math.sqrt(cell["seeds"]) if cell["seeds"] > 1 else math.inf


def verdicts(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per LSTM/GRU baseline: the found cell each comparison checks, and whether it passes (lower bpc is better)."""
    found = [c for c in cells if c["baseline"] is None and math.isfinite(c["test"]) and math.isfinite(c["val"])]
    rivals = [c for c in cells if (c["baseline"] or "").split("-h")[0] in ("lstm", "gru")]
    pick = lambda limit: min((f for f in found if f["macs"] <= limit), key=lambda f: (f["val"], f["macs"]), default=None)  # noqa: E731
    out = []
    for rival in sorted(rivals, key=lambda c: c["macs"]):
        cheap, equal = pick(RATIO * rival["macs"]), pick(rival["macs"])
        out.append({
            "rival": rival["baseline"], "rival_test": rival["test"], "rival_macs": rival["macs"],
            "cheap": None if cheap is None else cheap["trial"],
            "cheap_passes": cheap is not None and cheap["test"] <= rival["test"],
            "equal": None if equal is None else equal["trial"],
            "equal_passes": equal is not None and rival["test"] - equal["test"] >= MARGIN
            and rival["test"] - equal["test"] > 2 * math.hypot(_se(equal), _se(rival)),
        })
    return out


def print_tables(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"charlm: test bits per character over {result['seeds']} seeds (lower is better)")
    for column in ("cell", "test bpc", "val bpc", "MACs", "x LSTM MACs", "train chars/s"):
        table.add_column(column, justify="left" if column == "cell" else "right")
    lstm = max((c["macs"] for c in result["cells"] if (c["baseline"] or "").startswith("lstm")), default=None)
    for c in sorted(result["cells"], key=lambda c: (c["baseline"] is not None, c["test"])):
        table.add_row(c["baseline"] or f"found #{c['trial']}", f"{c['test']:.3f} ± {c['test_sd']:.3f}", f"{c['val']:.3f}",
                      f"{c['macs']:,}", "-" if lstm is None else f"{c['macs'] / lstm:.2f}",
                      f"{c.get('chars_per_s', math.nan):,.0f}")
    console.print(table)
    for v in result["verdicts"]:
        console.print(
            f"vs {v['rival']} ({v['rival_test']:.3f} bpc, {v['rival_macs']:,} MACs): "
            f"found #{v['cheap']} at <= {RATIO}x MACs {'PASSES' if v['cheap_passes'] else 'does not pass'} (<= its bpc); "
            f"found #{v['equal']} at <= 1x MACs {'PASSES' if v['equal_passes'] else 'does not pass'} (>= {MARGIN} bpc better, > 2 SE)",
            highlight=False)
    console.print(f"{result['trials']} trials in {result['minutes']:g} min of search ({result['wall_s']:.0f} s with "
                  f"confirmation), {result['failed']} failed, {result['diverged']} diverged")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, marker, color in (("baseline", "s", "tab:gray"), ("found", "o", "tab:red")):
        cells = [c for c in result["cells"] if (c["baseline"] is not None) == (kind == "baseline")]
        ax.errorbar([c["macs"] for c in cells], [c["test"] for c in cells], yerr=[c["test_sd"] for c in cells],
                    fmt=marker, color=color, label=kind, capsize=2)
        for c in cells:
            ax.annotate(c["baseline"] or f"#{c['trial']}", (c["macs"], c["test"]), fontsize=6, xytext=(2, 2),
                        textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("MACs per character")
    ax.set_ylabel(f"test bits per character (mean ± s.d., {result['seeds']} seeds)")
    ax.set_title("Tiny Shakespeare, characters: found cells vs known cells (lower is better)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=11.0, help="search wall-time budget (<= 15)")
    parser.add_argument("--seeds", type=int, default=3, help="retraining seeds per confirmed cell")
    parser.add_argument("--top", type=int, default=4, help="found cells of the front to confirm")
    parser.add_argument("--search-seed", type=int, default=0, help="the study's seed (a replicate: another search)")
    parser.add_argument("--steps", type=int, default=10, help="training windows timed per cell for chars/s")
    parser.add_argument("--from", dest="source", type=Path, help="take the charlm task of a vs_baselines JSON run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs-dir", type=Path, help="keep the study here (default: a temporary directory)")
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 120))
    if args.source:
        runs = json.loads(args.source.read_text())["results"]
        result = next((r for r in runs if r["task"] == "charlm"), None)
        if result is None:
            parser.error(f"{args.source}: no charlm task in this run")
    else:
        with tempfile.TemporaryDirectory() as scratch:
            result = vs_baselines.search_task("charlm", args.minutes, args.seeds, args.top,
                                              args.runs_dir or Path(scratch), console, seed=args.search_seed)
    data, _, train = vs_baselines.TASKS["charlm"]
    for cell in result["cells"]:
        cell["chars_per_s"] = throughput(cell["spec"], data, train, args.steps)
    result["verdicts"] = verdicts(result["cells"])
    print_tables(result, console)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "load": os.getloadavg(), "result": result}
    (args.out / "charlm.json").write_text(json.dumps(meta, indent=1))
    plot(result, args.out / "charlm.png")
    console.print(f"wrote {args.out / 'charlm.json'} and {args.out / 'charlm.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
