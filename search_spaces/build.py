"""`build(spec, task)`: the one place a Spec becomes a `torch.nn.Module`.

The model is input embedding (tokens) or none (features) -> the searched cell unrolled over time ->
a linear head on the last state (classify/regress) or on every step (lm). Weight matrices are grouped
by source node, so each step does one matmul per source; the input projections of all steps are one
matmul before the time loop. Sparse matrices are multiplied by a fixed boolean mask in every forward,
so masked weights get no gradient, and `apply_masks` zeroes them after each optimizer step too.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kernels.activation.expr import tree_text
from kernels.recurrent import cell_sequence, reference
from kernels.sparse import BlockLayout
from search_spaces import activations, sparsity
from search_spaces.lowering import cell_sources, lower_cell
from search_spaces.spec import LinearEdge, Spec, validate_spec
from search_spaces.task import Task


class CellModule(nn.Module):
    """A recurrent cell from a Spec, run over a whole sequence.

    Parameters (stable names, used by the hypernetwork): ``weights[src]`` of shape
    ``[k * hidden, in_src]`` stacks the k matrices leaving ``src`` in `Spec.linear_edges` order;
    ``biases[node]`` of shape ``[hidden]``. Buffers ``masks[src]`` mirror ``weights``.
    """

    def __init__(self, spec: Spec, input_size: int, *, seed: int = 0) -> None:
        super().__init__()
        validate_spec(spec)
        self.spec = spec
        self.hidden_size = hidden = spec.hidden_size
        self.input_size = input_size
        self.order = spec.op_nodes()
        self.states = spec.states
        self.edges: list[LinearEdge] = list(spec.linear_edges(input_size))
        for edge in self.edges:
            try:
                sparsity.check(edge.pattern, edge.density, edge.shape)
            except sparsity.SparsityError as exc:
                raise ValueError(f"edge {edge.src}->{edge.dst}: {exc}") from exc
        self.sources = cell_sources(spec, input_size)
        by_source = {s: [e for e in self.edges if e.src == s] for s in self.sources}
        self.edges_by_source = by_source
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterDict()
        self._mask_names: dict[str, str] = {}
        for src in self.sources:
            fan_in = input_size if src == "x" else hidden
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(len(by_source[src]) * hidden, fan_in, generator=gen) * 2 - 1) * bound
            self.weights[src] = nn.Parameter(w)
            masks = [
                sparsity.make_mask(
                    e.pattern,
                    e.density,
                    e.shape,
                    weight=w[i * hidden : (i + 1) * hidden],
                    seed=seed * 1009 + hash_edge(e),
                )
                for i, e in enumerate(by_source[src])
            ]
            self.register_buffer(self._mask_buffer(src), torch.cat(masks).to(w.dtype))
        self.biases = nn.ParameterDict()
        for node in self.order:
            if spec.graph.nodes[node]["bias"]:
                bound = 1.0 / math.sqrt(hidden)
                self.biases[node] = nn.Parameter((torch.rand(hidden, generator=gen) * 2 - 1) * bound)
        self.program = lower_cell(spec, input_size)
        # each op's activation as a torch function of `search_spaces.activations` (the reference's own)
        self.acts = [activations.compile_torch(tree_text(op.activation)) for op in self.program.ops]
        self._x_layout = self._block_layout()
        self.apply_masks()

    def _mask_buffer(self, src: str) -> str:
        name = self._mask_names.get(src)
        if name is None:
            name = self._mask_names[src] = f"mask_{len(self._mask_names)}"
        return name

    def mask(self, src: str) -> torch.Tensor:
        return getattr(self, self._mask_names[src])

    def _block_layout(self) -> BlockLayout | None:
        """Non-zero blocks of the x weights when block-sparse (the GPU path skips zero blocks)."""
        if "x" not in self.weights or not any(e.pattern == "block" for e in self.edges_by_source["x"]):
            return None
        block = sparsity.block_shape((self.hidden_size, self.input_size))
        mask = self.mask("x")
        if mask.shape[0] % block[0] or mask.shape[1] % block[1]:
            return None
        layout = BlockLayout.from_mask(mask, block)
        return layout if layout.density() < 1.0 else None

    def sparse(self) -> bool:
        return any(e.density < 1.0 for e in self.edges)

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the masked weights (call after every optimizer step)."""
        for src in self.sources:
            self.weights[src].mul_(self.mask(src))

    @torch.no_grad()
    def prune_magnitude(self, progress: float) -> None:
        """Gradual magnitude pruning: recompute ``magnitude`` masks at the scheduled density.

        At ``progress=0`` the masks are dense (pruned weights regrow from zero), at ``progress>=1``
        they are at the Spec's density, chosen by the magnitude of the trained weights.
        """
        hidden = self.hidden_size
        for src in self.sources:
            mask = self.mask(src)
            for i, e in enumerate(self.edges_by_source[src]):
                if e.pattern != "magnitude" or e.density >= 1.0:
                    continue
                rows = slice(i * hidden, (i + 1) * hidden)
                density = sparsity.magnitude_schedule(e.density, progress)
                w = self.weights[src][rows]
                mask[rows] = sparsity.make_mask("magnitude", density, e.shape, weight=w).to(mask.dtype)
        self._x_layout = self._block_layout()
        self.apply_masks()

    def initial_state(self, batch: int, like: torch.Tensor) -> dict[str, torch.Tensor]:
        return {s: like.new_zeros(batch, self.hidden_size) for s in self.states}

    def _stacked_state(self, state: dict[str, torch.Tensor] | None, x: torch.Tensor) -> torch.Tensor | None:
        """``state`` (``{name: [B, H]}``, e.g. the final states of the previous call) as the kernels'
        ``[S, B, H]`` initial states in `Spec.states` order; None stays None (zeros)."""
        if state is None:
            return None
        missing = [s for s in self.states if s not in state]
        if missing:
            raise ValueError(f"state: missing {missing}; pass the final states a previous call returned")
        B, H = x.shape[0], self.hidden_size
        for name in self.states:
            if tuple(state[name].shape) != (B, H):
                raise ValueError(f"state[{name!r}] must be [{B}, {H}], got {list(state[name].shape)}")
        return torch.stack([state[s].to(x.dtype) for s in self.states])

    def kernel_params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The parameters in the layout of `kernels.recurrent`: ``wx`` ``[Kx * H, in]``, recurrent
        ``weights`` ``[E, H, H]``, ``biases`` ``[NB, H]`` (masks applied, differentiable)."""
        H = self.hidden_size
        sparse = self.sparse()
        w = {s: self.weights[s] * self.mask(s) if sparse else self.weights[s] for s in self.sources}
        ref = next(iter(self.weights.values()), None)
        if ref is None:
            ref = next(iter(self.biases.values()))
        wx = w["x"] if "x" in w else ref.new_zeros(0, self.input_size)
        rec = [w[s].view(-1, H, H) for s in self.sources if s != "x"]
        weights = torch.cat(rec) if len(rec) > 1 else rec[0] if rec else ref.new_zeros(0, H, H)
        bias_list = [self.biases[n] for n in self.order if n in self.biases]
        biases = torch.stack(bias_list) if bias_list else ref.new_zeros(0, H)
        return wx, weights, biases

    def forward(
        self, x: torch.Tensor, state: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the cell over ``x`` ``[B, T, input_size]`` from ``state`` (``{name: [B, H]}``, None:
        zeros); returns h for every step ``[B, T, H]`` and the final states, which a later call takes
        as its ``state`` to continue the sequence (truncated BPTT: detach them first).

        One call into `kernels.recurrent.cell_sequence`: Triton on CUDA, torch's fused LSTM/GRU for
        exact LSTM/GRU Specs, otherwise the generated fused CPU path. `forward_reference` is the
        original per-step loop, kept as the oracle for tests.
        """
        wx, weights, biases = self.kernel_params()
        initial = self._stacked_state(state, x)
        hs, final = cell_sequence(self.program, x, wx, weights, biases, initial, wx_layout=self._x_layout)
        return hs, {s: final[i] for i, s in enumerate(self.states)}

    def forward_reference(
        self, x: torch.Tensor, state: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The naive per-step loop over the lowered program (one matmul per source per step, activations
        by `search_spaces.activations`); same numerics as `forward`, kept as the oracle for tests."""
        program, H = self.program, self.hidden_size
        B, T, _ = x.shape
        wx, weights, biases = self.kernel_params()
        xproj = (x @ wx.t()).view(B, T, program.num_x, H).unbind(1)  # per step [B, kx, H]
        groups = {src: (first, k) for src, first, k in program.groups()}
        # each source's edges as one [k * H, H] matrix, sliced once per forward (not per step)
        stacked = {src: weights[first : first + k].reshape(k * H, H).t() for src, (first, k) in groups.items()}
        initial = self._stacked_state(state, x)
        state = [x.new_zeros(B, H) for _ in range(program.num_states)] if initial is None else list(initial.unbind(0))

        def project(v: int, values: list[torch.Tensor], proj: dict[int, torch.Tensor]) -> None:
            """Every recurrent edge leaving value ``v``, in one matmul: ``proj[edge]`` its term."""
            if v in groups:
                first, k = groups[v]
                out = values[v] @ stacked[v]
                proj.update(zip(range(first, first + k), out.split(H, dim=1)))

        hs = []
        for t in range(T):
            values = list(state)
            proj: dict[int, torch.Tensor] = {}  # recurrent edge -> its term at this step
            xt = xproj[t].unbind(1)
            for v in range(program.num_states):
                project(v, values, proj)
            for op, act in zip(program.ops, self.acts):
                terms = [
                    xt[term.index] if term.kind == "x" else proj[term.index] if term.kind == "edge"
                    else values[term.index]
                    for term in op.terms
                ]
                values.append(act(reference.combine(op, terms, biases)))
                project(len(values) - 1, values, proj)
            state = reference.new_state(program, values)
            hs.append(state[0])
        return torch.stack(hs, dim=1), dict(zip(self.states, state))


def hash_edge(edge: LinearEdge) -> int:
    """A small deterministic integer per edge, for mask seeds (Python's hash() is salted)."""
    return sum(ord(c) * (i + 1) for i, c in enumerate(f"{edge.src}->{edge.dst}:{edge.slot}")) % 100_003


class SequenceModel(nn.Module):
    """Standardisation or embedding -> searched cell over time -> linear head.

    Float features are standardised with the training split's statistics when the task has them
    (buffers ``input_mean`` and ``input_std``, so checkpoints and exports carry them). Right-padded
    variable-length batches pass ``lengths``; the head reads each sequence at its last valid step,
    which equals running every sequence alone because the cell is causal.
    """

    def __init__(self, spec: Spec, task: Task, *, seed: int = 0) -> None:
        super().__init__()
        self.task = task
        hidden = spec.hidden_size
        gen = torch.Generator().manual_seed(seed + 7)
        if task.input_kind == "tokens":
            self.embedding: nn.Embedding | None = nn.Embedding(task.input_size, hidden)
            with torch.no_grad():
                self.embedding.weight.copy_(torch.randn(task.input_size, hidden, generator=gen))
            cell_in = hidden
        else:
            self.embedding = None
            cell_in = task.input_size
        if task.standardized:
            self.register_buffer("input_mean", torch.tensor(task.input_mean, dtype=torch.float32))
            self.register_buffer("input_std", torch.tensor(task.input_std, dtype=torch.float32))
        self.cell = CellModule(spec, cell_in, seed=seed)
        self.head = nn.Linear(hidden, task.output_size)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(hidden)
            self.head.weight.copy_((torch.rand(task.output_size, hidden, generator=gen) * 2 - 1) * bound)
            self.head.bias.copy_((torch.rand(task.output_size, generator=gen) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: ``[B, T, F]`` floats or ``[B, T]`` tokens; ``lengths`` ``[B]`` valid steps of
        right-padded sequences (None: all ``T``). Returns ``[B, out]``, or ``[B, T, out]`` for lm."""
        hs, _ = self.cell(self._cell_input(x))  # [B, T, H]
        if self.task.objective == "lm":
            return self.head(hs)
        return self.head(last_valid(hs, lengths))

    def forward_stateful(
        self, x: torch.Tensor, state: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A language model's step over the next ``T`` tokens of ``B`` streams: ``x`` ``[B, T]``
        tokens (or ``[B, T, F]`` features) from ``state`` (the final states of the previous call,
        None: zeros); returns the output at every step ``[B, T, out]`` and the final states.
        Consecutive calls equal one call on the concatenated steps (truncated BPTT detaches the
        state between them)."""
        hs, final = self.cell(self._cell_input(x), state)
        return self.head(hs), final

    def _cell_input(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens embedded, or features standardised (when the task has statistics)."""
        if self.embedding is not None:
            return self.embedding(x)
        if self.task.standardized:
            return (x - self.input_mean) / self.input_std
        return x

    def apply_masks(self) -> None:
        self.cell.apply_masks()

    def prune_magnitude(self, progress: float) -> None:
        self.cell.prune_magnitude(progress)


def last_valid(hs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """``hs[b, lengths[b] - 1]`` for each sequence of ``hs`` ``[B, T, H]`` (the last step without lengths)."""
    if lengths is None:
        return hs[:, -1]
    index = (lengths.to(hs.device, torch.long) - 1).view(-1, 1, 1).expand(-1, 1, hs.shape[-1])
    return hs.gather(1, index).squeeze(1)  # [B, H]


def build(spec: Spec, task: Task, *, seed: int = 0) -> SequenceModel:
    """Turn a valid Spec into a trainable sequence model for ``task``; deterministic in ``seed``."""
    return SequenceModel(spec, task, seed=seed)
