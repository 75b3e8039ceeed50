"""Show a search to a person: the Pareto plot, hypervolume over time, cell drawings, a report.

`pareto_figure` plots every trial at (MACs, validation score -- the task's metric): the front (joined by
its staircase), dominated trials, and pruned trials at their best partial score; beside it, the hypervolume of the
front after each finished trial. `cell_figure` draws a cell graph left to right. `write_report`
puts the plots, the front table and a drawing of each front cell into Markdown or HTML.

Matplotlib runs on the Agg backend (no display needed); every function returns the figure's
artists so tests can count points before anything is saved.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import optuna  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from nas.codegen import cell_formula  # noqa: E402
from nas.splits import (  # noqa: E402
    STUDY_ATTR,
    number_or_none,
    split_caption,
    study_eval_seeds,
    study_splits,
    validation_label,
)
from nas.study import REFERENCE_ATTR, hypervolume_2d, is_repeat, pareto_front, reference_score, study_metric  # noqa: E402
from search_spaces import Spec  # noqa: E402
from search_spaces.activations import canonical  # noqa: E402
from workers.data import describe_splits  # noqa: E402

NODE_SIZE = 2000
FRONT_COLOR, DOMINATED_COLOR, PRUNED_COLOR = "tab:red", "tab:blue", "tab:gray"


# ---- trials as points -----------------------------------------------------------------------------
@dataclass
class TrialPoints:
    """Trials split by how they are drawn; each point is (trial number, MACs, validation score)."""

    front: list[tuple[int, float, float]] = field(default_factory=list)
    dominated: list[tuple[int, float, float]] = field(default_factory=list)
    pruned: list[tuple[int, float, float]] = field(default_factory=list)
    baselines: list[tuple[str, float, float]] = field(default_factory=list)  # (tag, MACs, score)
    failed: int = 0
    running: int = 0


def trial_points(study: optuna.Study) -> TrialPoints:
    """Complete trials on/off the front; pruned ones at their best reported score and MACs; a
    repeat of an evaluated cell (`is_repeat`) is drawn once, as the original."""
    points, metric = TrialPoints(), study_metric(study)
    front = {t.number for t in pareto_front(study)}
    for t in study.get_trials(deepcopy=False):
        if is_repeat(t):
            continue
        if t.state == TrialState.COMPLETE and t.values:
            target = points.front if t.number in front else points.dominated
            target.append((t.number, float(t.values[1]), float(t.values[0])))
            if "baseline" in t.user_attrs:
                points.baselines.append((t.user_attrs["baseline"], float(t.values[1]), float(t.values[0])))
        elif t.state == TrialState.PRUNED and t.user_attrs.get("curve") and "macs" in t.user_attrs:
            points.pruned.append((t.number, float(t.user_attrs["macs"]), float(metric.best(t.user_attrs["curve"]))))
        elif t.state == TrialState.FAIL:
            points.failed += 1
        elif t.state == TrialState.RUNNING:
            points.running += 1
    points.front.sort(key=lambda p: p[1])
    return points


def hypervolume_curve(study: optuna.Study) -> list[tuple[int, float]]:
    """(finished trials so far, hypervolume of the complete ones) after each finished trial.

    The score is measured from `nas.study.reference_score` (accuracy: 0; bits per character: log2
    of the vocabulary, the score of guessing) and MACs are divided by 1.1 x the largest MACs of the study, so
    accuracy curves lie in [0, 1] and curves of one study are comparable over time.
    """
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    finished.sort(key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return []
    worst = 1.1 * max(t.values[1] for t in complete) or 1.0
    metric = study_metric(study)
    reference = (reference_score(metric, [t.values[0] for t in complete], study.user_attrs.get(REFERENCE_ATTR)), 1.0)
    curve, points = [], []
    for i, t in enumerate(finished, start=1):
        if t.state == TrialState.COMPLETE and t.values:
            points.append((t.values[0], t.values[1] / worst))
        curve.append((i, hypervolume_2d(points, reference, metric)))
    return curve


# ---- the Pareto figure ----------------------------------------------------------------------------
@dataclass
class ParetoFigure:
    """The figure and its artists: scatter offsets are the plotted (MACs, validation score) points."""

    figure: Figure
    front: PathCollection
    dominated: PathCollection
    pruned: PathCollection
    staircase: Line2D
    hypervolume: Line2D
    points: TrialPoints


def pareto_figure(study: optuna.Study, *, title: str | None = None) -> ParetoFigure:
    """Validation score against MACs for every trial (front, dominated, pruned), and hypervolume over time."""
    points, metric = trial_points(study), study_metric(study)
    fig, (ax, ax_hv) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [3, 2]})

    def scatter(rows: list[tuple[int, float, float]], **style: Any) -> PathCollection:
        xs, ys = [r[1] for r in rows], [r[2] for r in rows]
        return ax.scatter(xs, ys, **style)

    dominated = scatter(points.dominated, s=28, color=DOMINATED_COLOR, alpha=0.6,
                        label=f"dominated ({len(points.dominated)})")
    pruned = scatter(points.pruned, s=34, marker="x", color=PRUNED_COLOR,
                     label=f"pruned, best partial {metric.phrase} ({len(points.pruned)})")
    front = scatter(points.front, s=60, color=FRONT_COLOR, edgecolor="black", zorder=3,
                    label=f"Pareto front ({len(points.front)})")
    (staircase,) = ax.step([p[1] for p in points.front], [p[2] for p in points.front], where="post",
                           color=FRONT_COLOR, linewidth=1.2, zorder=2)
    for number, macs, acc in points.front:
        ax.annotate(str(number), (macs, acc), textcoords="offset points", xytext=(5, -10), fontsize=8)
    if points.baselines:  # the known cells, drawn over their front/dominated dots
        scatter([(0, m, a) for _, m, a in points.baselines], s=70, marker="s", facecolor="none",
                edgecolor="black", linewidth=1.2, zorder=4, label=f"baselines: known cells ({len(points.baselines)})")
        for tag, macs, acc in points.baselines:
            ax.annotate(tag, (macs, acc), textcoords="offset points", xytext=(4, 4), fontsize=6, color="dimgray")
    everything = points.front + points.dominated + points.pruned
    if everything and min(p[1] for p in everything) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("MACs per sample (log scale)" if ax.get_xscale() == "log" else "MACs per sample")
    ax.set_ylabel(validation_label(study.user_attrs.get(STUDY_ATTR), metric, study_eval_seeds(study)))
    extra = []
    if points.failed:
        extra.append(f"{points.failed} failed")
    if points.running:
        extra.append(f"{points.running} running")
    note = f" ({', '.join(extra)}, not shown)" if extra else ""
    ax.set_title(f"{title or study.study_name}: {metric.phrase} vs compute{note}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right" if metric.maximize else "upper right")

    curve = hypervolume_curve(study)
    (hv_line,) = ax_hv.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", markersize=3, color="tab:green")
    ax_hv.set_xlabel("finished trials")
    ax_hv.set_ylabel(f"hypervolume ({metric.phrase} x MACs, normalised)")
    ax_hv.set_title("hypervolume over time", fontsize=10)
    ax_hv.grid(True, alpha=0.3)
    if curve:
        ax_hv.set_ylim(0, max(0.05, 1.1 * max(c[1] for c in curve)))
    fig.tight_layout()
    return ParetoFigure(fig, front, dominated, pruned, staircase, hv_line, points)


def save_figure(figure: Figure, path: str | Path, *, dpi: int = 110) -> Path:
    """Save as PNG (or what the suffix says) and free the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def plot_pareto(study: optuna.Study, path: str | Path) -> ParetoFigure:
    """`pareto_figure` saved to ``path``."""
    result = pareto_figure(study)
    save_figure(result.figure, path)
    return result


# ---- the front as data ----------------------------------------------------------------------------
FRONT_COLUMNS = ("trial", "metric", "val_score", "test_score", "macs", "params", "epochs", "baseline", "vs_baseline",
                 "vs_baseline_val_delta", "hash", "cell")


def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One dict per front trial (best score first), with the columns of `FRONT_COLUMNS`: ``metric``
    names the score (``val_score`` on validation, ``test_score`` on test), ``baseline`` is the known
    cell's tag for a baseline, ``vs_baseline`` the best baseline at no more MACs and
    ``vs_baseline_val_delta`` the validation difference to it (the search's single run)."""
    from nas.export import baseline_comparisons
    from nas.tables import describe_cell

    versus, metric = baseline_comparisons(study), study_metric(study)
    return [
        {
            "trial": t.number,
            "metric": metric.name,
            "val_score": t.values[0],
            "test_score": number_or_none(t.user_attrs.get("test_score")),
            "macs": int(t.values[1]),
            "params": t.user_attrs.get("params"),
            "epochs": t.user_attrs.get("epochs"),
            "baseline": t.user_attrs.get("baseline"),
            "vs_baseline": versus.get(t.number, {}).get("vs_baseline", {}).get("baseline"),
            "vs_baseline_val_delta": versus.get(t.number, {}).get("vs_baseline", {}).get("val_delta"),
            "hash": t.user_attrs.get("hash"),
            "cell": describe_cell(t, width=10_000),
        }
        for t in pareto_front(study)
    ]


def write_front(study: optuna.Study, path: str | Path) -> Path:
    """The front as CSV (``.csv``) or JSON (any other suffix)."""
    path = Path(path)
    rows = front_rows(study)
    if path.suffix == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FRONT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text(json.dumps(rows, indent=2) + "\n")
    return path


# ---- cell drawings --------------------------------------------------------------------------------
def _short(activation: str) -> str:
    text = canonical(activation)
    return "id" if text == "x" else text.removesuffix("(x)") if text.count("(") == 1 else text


def cell_figure(spec: Spec, *, title: str | None = None) -> Figure:
    """A drawing of the cell, inputs on the left, new states on the right.

    Op nodes show their name, combine and activation; solid edges carry a weight matrix (sparse ones
    are labelled with pattern and density), dashed edges pass a value through; dotted edges lead to
    the new states (several into ``h'`` means their mean).
    """
    g = nx.DiGraph(spec.graph)
    outputs = {f"{s}'": spec.output_nodes(s) for s in spec.states}
    for out, nodes in outputs.items():
        g.add_node(out, kind="output")
        for n in nodes:
            g.add_edge(n, out, kind="output")
    for layer, nodes in enumerate(nx.topological_generations(g)):
        for n in nodes:
            g.nodes[n]["layer"] = layer
    last = max(d["layer"] for _, d in g.nodes(data=True))
    for n in ["x", *spec.states]:
        g.nodes[n]["layer"] = 0
    for out in outputs:
        g.nodes[out]["layer"] = last
    pos = nx.multipartite_layout(g, subset_key="layer", align="vertical", scale=1.0)
    layers = last + 1
    tallest = max(sum(1 for _, d in g.nodes(data=True) if d["layer"] == i) for i in range(layers))
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * layers), max(3.0, 1.0 * tallest + 1)))
    colors = {"input": "#9ecae1", "state": "#a1d99b", "op": "#fdd0a2", "output": "#d9d9d9"}
    labels = {}
    for n, d in g.nodes(data=True):
        if d["kind"] == "op":
            labels[n] = f"{n}\n{_short(d['activation'])}\n{d['combine']}" + (" +b" if d["bias"] else "")
        else:
            labels[n] = str(n)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=[colors[d["kind"]] for _, d in g.nodes(data=True)],
                           node_size=NODE_SIZE, edgecolors="black", linewidths=0.8)
    nx.draw_networkx_labels(g, pos, labels, ax=ax, font_size=7)
    linear = [(u, v) for u, v, e in g.edges(data=True) if e.get("kind") != "output" and e.get("linear", True)]
    passing = [(u, v) for u, v, e in g.edges(data=True) if e.get("kind") != "output" and not e.get("linear", True)]
    to_out = [(u, v) for u, v, e in g.edges(data=True) if e.get("kind") == "output"]
    common = dict(ax=ax, node_size=NODE_SIZE, arrows=True, arrowsize=12, connectionstyle="arc3,rad=0.08")
    nx.draw_networkx_edges(g, pos, edgelist=linear, width=1.4, **common)
    nx.draw_networkx_edges(g, pos, edgelist=passing, width=1.0, style="dashed", **common)
    nx.draw_networkx_edges(g, pos, edgelist=to_out, width=1.0, style="dotted", edge_color="dimgray", **common)
    sparse = {
        (u, v): f"{e.get('pattern')} {float(e.get('density', 1.0)):.0%}"
        for u, v, e in g.edges(data=True)
        if e.get("kind") != "output" and e.get("linear", True) and float(e.get("density", 1.0)) < 1.0
    }
    if sparse:
        nx.draw_networkx_edge_labels(g, pos, edge_labels=sparse, ax=ax, font_size=6)
    ax.set_title(title or f"cell (hidden {spec.hidden_size})", fontsize=9)
    ax.axis("off")
    ax.margins(0.12)
    fig.tight_layout()
    return fig


# ---- the report -----------------------------------------------------------------------------------
Block = tuple  # ("h1"|"h2"|"p"|"pre", text) | ("img", path, alt) | ("table", header, rows)


def _render_markdown(blocks: list[Block]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + f" {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "pre":
            out.append(f"```\n{block[1]}\n```")
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]})")
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _render_html(blocks: list[Block], title: str) -> str:
    out = [
        "<!doctype html>",
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}"
        "td{text-align:right}td:last-child{text-align:left;font-family:monospace}"
        "img{max-width:100%}pre{background:#f6f6f6;padding:.6em}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "pre":
            out.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "img":
            out.append(f"<p><img src='{html.escape(block[1])}' alt='{html.escape(block[2])}'></p>")
        elif kind == "table":
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in block[1]) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in block[2]]
            out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    study: optuna.Study, out_dir: str | Path, *, fmt: str = "md", config: Any = None
) -> Path:
    """Write ``report.md`` (or ``report.html``) with ``pareto.png``, ``front.csv`` and one drawing per
    front cell under ``cells/`` into ``out_dir``; returns the report's path.

    Args:
        study: the study to report.
        out_dir: created if missing.
        fmt: ``"md"`` or ``"html"``.
        config: the search `Config`, to name the data, space and config hash (optional).
    """
    if fmt not in ("md", "html"):
        raise ValueError(f"fmt: expected 'md' or 'html', got {fmt!r}")
    out = Path(out_dir)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    figure = plot_pareto(study, out / "pareto.png")
    write_front(study, out / "front.csv")
    points = figure.points
    complete = len(points.front) + len(points.dominated)
    front = pareto_front(study)
    blocks: list[Block] = [("h1", f"Search report: {study.study_name}")]
    if config is not None:
        blocks.append(("p", f"Data {config.data.name}, space {config.space.name}, sampler {config.search.sampler}, "
                            f"stopping {config.stopping.policy}, seed {config.seed}; "
                            f"config hash {config.fingerprint()}."))
    metric = study_metric(study)
    best = front[0] if front else None
    repeats = sum(1 for t in study.get_trials(deepcopy=False) if is_repeat(t))
    blocks.append(("p", f"{complete} complete, {len(points.pruned)} pruned, {points.failed} failed trials"
                        + (f" ({repeats} more repeated cells already evaluated and took their results)" if repeats else "")
                        + f"; {len(front)} on the Pareto front"
                        + (f"; best validation {metric.phrase} {metric.fmt(best.values[0])} (trial {best.number}, "
                           f"{int(best.values[1]):,} MACs)." if best else ".")))
    blocks.append(("img", "pareto.png", "Pareto front and hypervolume"))
    blocks.append(("h2", "Pareto front"))
    rows = [
        (r["trial"], metric.fmt(r["val_score"]),
         metric.fmt(r["test_score"]),
         f"{r['macs']:,}", "-" if r["params"] is None else f"{r['params']:,}", r["epochs"] or "-",
         f"is {r['baseline']}" if r["baseline"] else
         "-" if r["vs_baseline"] is None else f"{r['vs_baseline_val_delta']:+.{metric.digits}f} vs {r['vs_baseline']}",
         r["cell"])
        for r in front_rows(study)
    ]
    blocks.append(("table", ["trial", f"val {metric.label}", f"test {metric.label}", "MACs", "params", "epochs", "vs baseline", "cell"], rows))
    splits = study_splits(study, config)
    caption = split_caption(splits, metric, study_eval_seeds(study))  # the front table holds each trial's own numbers
    blocks.append(("p", f"Data: {describe_splits(splits)}. {caption}." if splits else f"{caption}."))
    from nas.baselines import summary_line
    from nas.confirm import study_scores

    line = summary_line(study_scores(study)[0], metric)
    if line:
        blocks.append(("p", line[0].upper() + line[1:] + "."))
    blocks.append(("p", "The front as CSV: front.csv. `nas export NAME --pareto --out DIR` writes these cells as "
                        "JSON, standalone PyTorch, weights and ONNX."))
    blocks.append(("h2", "Cells on the front"))
    for t in front:
        spec = Spec.from_json(t.user_attrs["spec"])
        name = f"cells/trial_{t.number}.png"
        head = f"trial {t.number}: val {metric.label} {metric.fmt(t.values[0])}, {int(t.values[1]):,} MACs"
        save_figure(cell_figure(spec, title=head), out / name)
        blocks += [("h3", f"Trial {t.number}"), ("img", name, f"cell of trial {t.number}"),
                   ("pre", "\n".join(cell_formula(spec)))]
    path = out / f"report.{fmt}"
    text = _render_markdown(blocks) if fmt == "md" else _render_html(blocks, f"Search report: {study.study_name}")
    path.write_text(text)
    return path


__all__ = [
    "ParetoFigure",
    "TrialPoints",
    "cell_figure",
    "front_rows",
    "hypervolume_curve",
    "pareto_figure",
    "plot_pareto",
    "save_figure",
    "trial_points",
    "write_front",
    "write_report",
]
