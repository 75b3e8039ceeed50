"""Standalone PyTorch source for a cell: a ``.py`` file that imports only torch.

`module_source(spec, task)` writes the cell as straight-line torch code: one line per op node inside a
loop over time steps, with the parameters and buffers named exactly as in `search_spaces.build`
(``cell.weights.<src>``, ``cell.biases.<node>``, ``cell.mask_<i>``, ``head.*``, ``embedding.*``), so
the state dict of a trained candidate loads into the generated ``Model`` with ``strict=True``. A user
copies the file into a project; nothing of this package is needed to run, train or export it.

For a language model (``lm`` task) ``Model`` carries the cell's state between calls and generates
text from the embedded vocabulary (`nas.lm_codegen`).

The numerics follow `CellModule.forward_reference`: combine the inputs left to right, add the bias,
apply the activation; the new ``h`` is the mean of the loose ends. Activation units are emitted from
`UNARY_CODE`/`BINARY_CODE`, made from the one unit table `kernels.activation.units`.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

from kernels.activation import units
from kernels.activation.expr import tree_text
from kernels.recurrent.program import CellProgram, Term
from nas.lm_codegen import lm_model_source, vocab_level, vocab_source
from search_spaces.lowering import lower_activation, lower_cell, value_names
from search_spaces.spec import Spec, validate_spec
from search_spaces.task import Task

# torch code of each activation unit, from `kernels.activation.units`; ``{}`` are the arguments.
# Helpers (``_cube``...) are emitted into the file when used, from `HELPERS`.
UNARY_CODE: dict[str, str] = {name: u.code for name, u in units.of_arity(1).items()}
BINARY_CODE: dict[str, str] = {name: u.code for name, u in units.of_arity(2).items()}
HELPERS: dict[str, str] = {
    "_cube": "def _cube(a: torch.Tensor) -> torch.Tensor:\n    return a * a * a\n",
    "_gauss": "def _gauss(a: torch.Tensor) -> torch.Tensor:\n    return torch.exp(-a * a)\n",
    "_div": (
        "def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:\n"
        f"    return a / (torch.abs(b) + {units.DIV_EPS!r})\n"
    ),
    "_sigmul": "def _sigmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:\n    return torch.sigmoid(a) * b\n",
}
_RESERVED = {"x", "t", "B", "T", "H", "hs", "self", "torch", "nn", "state"}


def activation_code(text: str, arg: str) -> tuple[str, set[str]]:
    """Torch code applying the activation ``text`` to the variable ``arg``, and the helpers it uses."""
    return tree_code(lower_activation(text), arg)


def tree_code(tree: tuple, arg: str) -> tuple[str, set[str]]:
    """Torch code applying a lowered activation (`search_spaces.lowering.lower_activation`) to ``arg``."""
    used: set[str] = set()

    def emit(tree: tuple) -> str:
        if tree[0] == "x":
            return arg
        template = units.UNITS[tree[0]].code
        used.update(h for h in HELPERS if template.startswith(h + "("))
        return template.format(*(emit(a) for a in tree[1:]))

    return emit(tree), used


def _rows(i: int) -> str:
    return "" if i == 0 else "H" if i == 1 else f"{i} * H"


def _uses_of_x(tree: tuple) -> int:
    return 1 if tree[0] == "x" else sum(_uses_of_x(a) for a in tree[1:])


def package_version() -> str:
    try:
        return metadata.version("nas-hyper")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


class _Names:
    """Python identifiers for node values (``v_<node>``) and projections (``p_<src>``)."""

    def __init__(self, nodes: list[str]) -> None:
        self.value: dict[str, str] = {}
        taken = set(_RESERVED)
        for node in nodes:
            base = "v_" + re.sub(r"\W", "_", str(node))
            name, i = base, 1
            while name in taken:
                name, i = f"{base}_{i}", i + 1
            taken.add(name)
            self.value[node] = name

    def proj(self, src: str) -> str:
        return "p" + self.value[src][1:]

    def weight(self, src: str) -> str:
        return "w" + self.value[src][1:]


def _substitute(tree: tuple, inner: str) -> str:
    """Canonical text of a lowered activation with ``x`` replaced by ``inner``."""
    if tree[0] == "x":
        return inner
    return f"{tree[0]}({', '.join(_substitute(a, inner) for a in tree[1:])})"


_SYMBOL = {"add": " + ", "mul": " * ", "sub": " - "}


class _Layout:
    """Names for the parts of a lowered program: values (side table `value_names`), weight sources in
    parameter order (``x``, then the sources of `CellProgram.groups`), and where each term's
    projection lives (source, chunk, chunks of that source)."""

    def __init__(self, spec: Spec, program: CellProgram) -> None:
        self.program = program
        self.value = value_names(spec)
        self.group = {src: (first, k) for src, first, k in program.groups()}
        self.sources = ["x"] * bool(program.num_x) + [self.value[src] for src, _, _ in program.groups()]
        self.chunks = {"x": program.num_x} | {self.value[src]: k for src, (_, k) in self.group.items()}
        # the op each projection chunk feeds: (source, chunk) -> op node
        self.dst: dict[tuple[str, int], str] = {}
        for i, op in enumerate(program.ops):
            for term in op.terms:
                if term.kind != "value":
                    self.dst[self.chunk(term)] = self.op_name(i)

    def op_name(self, i: int) -> str:
        return self.value[self.program.num_states + i]

    def chunk(self, term: Term) -> tuple[str, int]:
        """(source name, chunk index) of an ``x`` or ``edge`` term."""
        if term.kind == "x":
            return "x", term.index
        src = self.program.edge_src[term.index]
        return self.value[src], term.index - self.group[src][0]

    def source_of(self, term: Term) -> str:
        return self.chunk(term)[0] if term.kind != "value" else self.value[term.index]


def cell_formula(spec: Spec, program: CellProgram | None = None) -> list[str]:
    """One readable line per op node, e.g. ``n1 = tanh(W·x + U·n0 + b)``; then the state outputs.

    ``program``: ``spec`` lowered (`lower_cell`); its structure does not depend on the input size.
    """
    layout = _Layout(spec, program or lower_cell(spec, spec.hidden_size))
    lines = []
    for i, op in enumerate(layout.program.ops):
        node = layout.op_name(i)
        terms = [
            f"W[{layout.source_of(t)}->{node}]·{layout.source_of(t)}" if t.kind != "value" else layout.source_of(t)
            for t in op.terms
        ]
        inner = _SYMBOL[op.combine].join(terms) + (" + b" if op.bias >= 0 else "")
        lines.append(f"{node} = {_substitute(op.activation, inner)}")
    for state, outs in zip(layout.value, layout.program.outputs):
        nodes = [layout.value[v] for v in outs]
        lines.append(f"{state}' = {nodes[0]}" if len(nodes) == 1 else f"{state}' = mean({', '.join(nodes)})")
    return lines


def module_source(spec: Spec, task: Task, *, title: str = "searched cell", module_name: str = "cell") -> str:
    """The source of a standalone module defining ``Cell`` and ``Model`` (embedding -> cell -> head;
    for an ``lm`` task a stateful ``Model`` with ``generate``, see `nas.lm_codegen`).

    Args:
        spec: a valid cell.
        task: the task the cell was searched on (input size, sequence length, outputs, objective).
        title: a line for the module docstring, e.g. ``"trial 21 of study quickstart"``.
        module_name: the file's module name, for the usage example in its docstring.

    Returns:
        Python source text that imports only torch.
    """
    validate_spec(spec)
    hidden = spec.hidden_size
    cell_in = hidden if task.input_kind == "tokens" else task.input_size
    program = lower_cell(spec, cell_in)
    layout = _Layout(spec, program)
    sources, states = layout.sources, spec.states
    names = _Names(["x", *layout.value])
    helpers: set[str] = set()

    init = ["        self.weights = nn.ParameterDict()"]
    for i, src in enumerate(sources):
        fan_in = "input_size" if src == "x" else "H"
        k = layout.chunks[src]
        rows = "H" if k == 1 else f"{k} * H"
        targets = ", ".join(f"{src}->{layout.dst[(src, j)]}" for j in range(k))
        init.append(f"        self.weights[{src!r}] = nn.Parameter(torch.empty({rows}, {fan_in}))  # {targets}")
        init.append(f"        self.register_buffer({f'mask_{i}'!r}, torch.ones({rows}, {fan_in}))  # 1 = weight kept")
    init.append("        self.biases = nn.ParameterDict()")
    for i, op in enumerate(program.ops):
        if op.bias >= 0:
            init.append(f"        self.biases[{layout.op_name(i)!r}] = nn.Parameter(torch.empty(H))")

    sparse = {e.src for e in spec.linear_edges(cell_in) if e.density < 1.0}
    body = ["        B, T, _ = x.shape", "        H = self.hidden_size"]
    for i, src in enumerate(sources):
        mask = f" * self.mask_{i}" if src in sparse else ""
        body.append(f"        {names.weight(src)} = self.weights[{src!r}]{mask}")
    if program.num_x:
        body.append(f"        p_x_all = x @ {names.weight('x')}.t()  # [B, T, {_rows(program.num_x)}], all steps at once")
    body.append("        if state is None:")
    body.append(f"            state = tuple(x.new_zeros(B, H) for _ in range({len(states)}))")
    state_vars = ", ".join(names.value[s] for s in states)
    body.append(f"        {state_vars} = state" if len(states) > 1 else f"        {state_vars} = state[0]")
    body.append("        hs = []")
    body.append("        for t in range(T):")
    step: list[str] = []
    if program.num_x:
        step.append(f"{names.proj('x')} = p_x_all[:, t]")
    for s in states:
        if s in layout.chunks:
            step.append(f"{names.proj(s)} = {names.value[s]} @ {names.weight(s)}.t()")
    for i, op in enumerate(program.ops):
        node = layout.op_name(i)
        terms = []
        for term in op.terms:
            if term.kind == "value":
                terms.append(names.value[layout.value[term.index]])
                continue
            src, j = layout.chunk(term)
            p = names.proj(src)
            terms.append(p if layout.chunks[src] == 1 else f"{p}[:, {_rows(j)}:{_rows(j + 1)}]")
        pre = _SYMBOL[op.combine].join(terms) + (f" + self.biases[{node!r}]" if op.bias >= 0 else "")
        v = names.value[node]
        if op.activation[0] == "x":
            step.append(f"{v} = {pre}")
        elif _uses_of_x(op.activation) <= 1:
            code, used = tree_code(op.activation, pre)
            helpers |= used
            step.append(f"{v} = {code}")
        else:
            code, used = tree_code(op.activation, v)
            helpers |= used
            step += [f"{v} = {pre}", f"{v} = {code}  # {tree_text(op.activation)}"]
        if node in layout.chunks:
            step.append(f"{names.proj(node)} = {v} @ {names.weight(node)}.t()")
    new = []
    for outs in program.outputs:
        values = [names.value[layout.value[n]] for n in outs]
        new.append(values[0] if len(values) == 1 else f"torch.stack([{', '.join(values)}]).mean(0)")
    step.append(f"{state_vars} = {', '.join(new)}")
    step.append(f"hs.append({names.value[states[0]]})")
    body += ["            " + line for line in step]
    body.append(f"        return torch.stack(hs, dim=1), ({state_vars}{',' if len(states) == 1 else ''})")

    tokens = task.input_kind == "tokens"
    formula = "\n".join("    " + line for line in cell_formula(spec, program))
    helper_src = "".join(HELPERS[h] + "\n\n" for h in sorted(helpers))
    spec_json = json.dumps(spec.to_dict(), sort_keys=True)
    constants = ""
    if task.standardized:
        constants = (f"# the training split's per-feature statistics: the model sees (x - INPUT_MEAN) / INPUT_STD\n"
                     f"INPUT_MEAN = {tuple(task.input_mean)!r}\nINPUT_STD = {tuple(task.input_std)!r}\n")
    if task.objective == "lm":
        usage = _lm_usage(task, module_name)
        model_src = "\n\n".join(filter(None, (vocab_source(task), lm_model_source(task, states))))
    else:
        usage, model_src = _model_source(task, module_name)
    return f'''"""{title}: a recurrent cell found by neural architecture search (nas-hyper {package_version()}).

Standalone: this file imports only torch. The cell, one line per node (W· is a weight matrix, b a bias)::

{formula}

Usage::

{usage}
``Model()`` without ``load_state_dict`` starts from a fresh uniform initialisation and trains like any
torch module. Sparse weight matrices keep their masks in the ``mask_<i>`` buffers (from weights.pt).
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_SIZE = {task.input_size}  # {"vocabulary size" if tokens else "features per step"}
SEQ_LEN = {task.seq_len}
OUTPUT_SIZE = {task.output_size}
HIDDEN_SIZE = {hidden}
INPUT_KIND = {task.input_kind!r}
OBJECTIVE = {task.objective!r}
VARIABLE_LENGTH = {task.variable_length!r}  # right-padded sequences: pass their lengths to Model
STATES = {tuple(states)!r}  # the cell's state, in the order Cell (and Model) take and return it
{constants}

{helper_src}class Cell(nn.Module):
    """The searched cell, unrolled over a sequence; states {states}."""

    def __init__(self, input_size: int = {cell_in}, hidden_size: int = HIDDEN_SIZE) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = H = hidden_size
{chr(10).join(init)}
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        for w in self.weights.values():
            bound = w.shape[1] ** -0.5
            w.uniform_(-bound, bound)
        for b in self.biases.values():
            bound = self.hidden_size ** -0.5
            b.uniform_(-bound, bound)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x: [B, T, input_size]; state: ({", ".join(states)}) each [B, H] or None (zeros).
        Returns h for every step [B, T, H] and the final states."""
{chr(10).join(body)}


{model_src}

# the cell as nas-hyper JSON (networkx node-link): `nas import` reads it back
SPEC_JSON = {spec_json!r}
'''


def _model_source(task: Task, module_name: str) -> tuple[str, str]:
    """Usage lines and source of the sequence-to-one ``Model`` (classify, regress): standardise or
    embed -> cell -> head on the last (valid) step."""
    tokens = task.input_kind == "tokens"
    if tokens:
        x_doc = f"x: [batch, {task.seq_len}] token ids (int64, < {task.input_size})"
    else:
        x_doc = f"x: [batch, {task.seq_len}, {task.input_size}] float32"
    y_doc = f"[batch, {task.output_size}] {'logits' if task.objective == 'classify' else 'predictions'}"
    model_doc = (f"{'Embedding -> cell' if tokens else 'Standardise -> cell' if task.standardized else 'Cell'} "
                 "over time -> linear head on the last (valid) step.")
    standardize_init, standardize_forward = "", ""
    if task.standardized:
        standardize_init = ('        self.register_buffer("input_mean", torch.tensor(INPUT_MEAN, dtype=torch.float32))\n'
                            '        self.register_buffer("input_std", torch.tensor(INPUT_STD, dtype=torch.float32))\n')
        standardize_forward = "        x = (x - self.input_mean) / self.input_std\n"
    lengths_doc = "; lengths: [batch] valid steps of right-padded sequences (None: all)"
    usage = (f"    import torch\n    from {module_name} import Model\n    model = Model()\n"
             "    model.load_state_dict(torch.load(\"weights.pt\"))   # the trained weights exported beside this file\n"
             f"    y = model(x{', lengths' if task.variable_length else ''})   # {x_doc}"
             f"{lengths_doc if task.variable_length else ''} -> {y_doc}\n")
    source = f'''class Model(nn.Module):
    """{model_doc}"""

    def __init__(self) -> None:
        super().__init__()
{"        self.embedding = nn.Embedding(INPUT_SIZE, HIDDEN_SIZE)" + chr(10) if tokens else ""}\
{standardize_init}\
        self.cell = Cell({"HIDDEN_SIZE" if tokens else "INPUT_SIZE"}, HIDDEN_SIZE)
        self.head = nn.Linear(HIDDEN_SIZE, OUTPUT_SIZE)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """{x_doc}{lengths_doc} -> {y_doc}."""
{"        x = self.embedding(x)" + chr(10) if tokens else ""}\
{standardize_forward}\
        hs, _ = self.cell(x)  # [B, T, H]
        if lengths is None:
            return self.head(hs[:, -1])
        index = (lengths.long() - 1).view(-1, 1, 1).expand(-1, 1, hs.shape[-1])
        return self.head(hs.gather(1, index).squeeze(1))  # each sequence's last valid step
'''
    return usage, source


def _lm_usage(task: Task, module_name: str) -> str:
    """Usage lines of a language model's ``Model``: logits and state, carried state, text generation."""
    lines = [
        "    import torch",
        f"    from {module_name} import Model{', encode, decode' if task.vocab is not None else ''}",
        "    model = Model()",
        "    model.load_state_dict(torch.load(\"weights.pt\"))   # the trained weights exported beside this file",
        f"    logits, state = model(x)          # x: [batch, T] token ids (int64, < {task.input_size}) -> "
        f"[batch, T, {task.output_size}], state",
        "    logits, state = model(x2, state)  # carries on where x ended (as nn.LSTM carries (h, c))",
    ]
    if task.vocab is not None:
        space = "" if vocab_level(task.vocab) == "char" else ' + " "'
        lines.append(f"    print(text{space} + model.generate(text, 200, temperature=0.8, seed=0))"
                     "   # text: a prompt; 200 sampled tokens")
    return "\n".join(lines) + "\n"
