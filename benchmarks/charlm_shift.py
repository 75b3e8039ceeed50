"""Tiny Shakespeare: which candidate activations generalise from the play being read to a new play?

configs/charlm.yaml validates on the text right after the training text (the end of the play that
training ends in) and tests on the last 5% (mostly a play that training never saw). This check uses
the TRAINING text only (the first 90%; the test split plays no part): the known gated cells at 128
units, each with a tanh, relu or identity candidate, are trained with charlm.yaml's recipe on the
text before a play boundary less ``--length`` characters, then scored on the next ``--length``
characters (the rest of the same play) and on the first ``--length`` of the next play (The Winter's
Tale -> Measure for Measure, at 76% of the text). Printed per cell over ``--seeds`` seeds: bits per
character on both, the gap, and the change against the same cell with a tanh candidate.

    python benchmarks/charlm_shift.py [--seeds 3] [--length 40000] [--workers 2]

Writes ``benchmarks/results/charlm_shift.json`` and ``charlm_shift.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from nas.config import load_config  # noqa: E402
from nas.seed_runs import mean_std, run_jobs  # noqa: E402
from search_spaces.gated import GatedCellSpace  # noqa: E402
from search_spaces.cost import cost  # noqa: E402
from workers.data import load_dataset  # noqa: E402
from workers.data.text import corpus_bytes  # noqa: E402

RESULTS = Path(__file__).parent / "results"
NEW_PLAY = "DUKE VINCENTIO:"  # the first speech of Measure for Measure, the play after The Winter's Tale
CELLS, ACTIVATIONS, HIDDEN = ("mgu", "gru", "lstm"), ("tanh", "relu", "identity"), 128


def regions(text: str, length: int) -> tuple[str, str, str]:
    """(training text, the rest of the same play, the start of the next play), cut at the blank line
    before the next play's first speech."""
    boundary = text.rfind("\n\n", 0, text.find(NEW_PLAY)) + 2
    if boundary - length < length:
        raise ValueError(f"--length {length}: too long for the text before the play boundary")
    return text[: boundary - length], text[boundary - length : boundary], text[boundary : boundary + length]


def cells(space: GatedCellSpace) -> dict[str, Any]:
    """Each known cell at ``HIDDEN`` units with each candidate activation, as specs."""
    out = {}
    for name in CELLS:
        params = space.named_params(name, HIDDEN)
        for act in ACTIVATIONS:
            out[f"{name}-h{HIDDEN} {act}"] = space.decode({**params, "cand_act": act})
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for act, color in zip(ACTIVATIONS, ("tab:blue", "tab:orange", "tab:red")):
        mine = [r for r in rows if r["activation"] == act]
        ax.errorbar([r["same"] for r in mine], [r["new"] for r in mine], xerr=[r["same_sd"] for r in mine],
                    yerr=[r["new_sd"] for r in mine], fmt="o", color=color, label=f"{act} candidate", capsize=2)
        for r in mine:
            ax.annotate(r["cell"].split()[0], (r["same"], r["new"]), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("bits per character, the rest of the same play")
    ax.set_ylabel("bits per character, the next play")
    ax.set_title("Tiny Shakespeare: fit to the play being read vs a new play\n(lower is better; training text only)",
                 fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--length", type=int, default=40_000, help="characters of each scored region")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console(width=max(Console().width, 110))
    config = load_config(REPO / "configs" / "charlm.yaml")
    space = GatedCellSpace(**{k: v for k, v in config.space.options().items() if k != "activations"})
    text = corpus_bytes().decode("utf-8")
    train = config.train.to_dict()
    epochs = train.pop("epochs")
    with tempfile.TemporaryDirectory() as scratch:
        paths = {}
        for role, part in zip(("train", "val", "test"), regions(text, args.length)):
            paths[f"{role}_path"] = str(Path(scratch) / f"{role}.txt")
            Path(paths[f"{role}_path"]).write_text(part, encoding="utf-8")
        options = {"level": config.data.level, "bptt": config.data.options()["bptt"], **paths}
        specs = cells(space)
        task = load_dataset("text", **options).task
        jobs = [{"cell": name, "spec": spec.to_json(), "data": "text", "data_options": options, "epochs": epochs,
                 "train": train, "seed": seed} for name, spec in specs.items() for seed in range(args.seeds)]
        runs = run_jobs(jobs, args.workers)
    rows = []
    for name, spec in specs.items():
        mine = [r for r in runs if r["cell"] == name]
        (same, same_sd), (new, new_sd) = mean_std(r["score"] for r in mine), mean_std(r["test_score"] for r in mine)
        rows.append({"cell": name, "activation": name.split()[1], "macs": cost(spec, task)["macs"], "same": same, "same_sd": same_sd,
                     "new": new, "new_sd": new_sd, "seeds": len(mine)})
    tanh = {r["cell"].split()[0]: r for r in rows if r["activation"] == "tanh"}
    table = Table(title=f"Training text only: the same play vs the next play, bits per character over {args.seeds} seeds")
    for column in ("cell", "same play", "next play", "next - same", "same vs tanh", "next vs tanh"):
        table.add_column(column, justify="left" if column == "cell" else "right")
    for r in rows:
        base = tanh[r["cell"].split()[0]]
        table.add_row(r["cell"], f"{r['same']:.3f} ± {r['same_sd']:.3f}", f"{r['new']:.3f} ± {r['new_sd']:.3f}",
                      f"{r['new'] - r['same']:.3f}", f"{r['same'] - base['same']:+.3f}", f"{r['new'] - base['new']:+.3f}")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "charlm_shift.json").write_text(json.dumps({"length": args.length, "rows": rows}, indent=1))
    plot(rows, args.out / "charlm_shift.png")
    console.print(f"wrote {args.out / 'charlm_shift.json'} and {args.out / 'charlm_shift.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
