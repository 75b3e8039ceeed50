"""Compute cost of a candidate: multiply-accumulates per sample and parameters, sparsity counted."""

from __future__ import annotations

from search_spaces import sparsity
from search_spaces.spec import Spec
from search_spaces.task import Task


def cost(spec: Spec, task: Task) -> dict[str, int]:
    """MACs per sample and parameter count of ``build(spec, task)``.

    MACs count matrix products only: every weight matrix once per time step at its non-zero count
    (a 25%-dense matrix costs 25%), plus the head once per sequence (every step for ``lm``).
    Parameters count non-zero weights, biases, the head and the embedding.
    """
    hidden = spec.hidden_size
    cell_in = hidden if task.input_kind == "tokens" else task.input_size
    matrix = sum(sparsity.nnz(e.pattern, e.density, e.shape) for e in spec.linear_edges(cell_in))
    biases = hidden * sum(1 for n in spec.op_nodes() if spec.graph.nodes[n]["bias"])
    head = hidden * task.output_size
    head_steps = task.seq_len if task.objective == "lm" else 1
    embedding = task.input_size * hidden if task.input_kind == "tokens" else 0
    return {
        "macs": task.seq_len * matrix + head_steps * head,
        "params": matrix + biases + head + task.output_size + embedding,
    }
