"""The language-model parts of a generated ``cell.py``: the vocabulary and a stateful ``Model``.

For an ``lm`` task `nas.codegen.module_source` writes, instead of the sequence-to-one ``Model``:

- ``VOCAB`` (the string of each token id, from `Task.vocab`), ``LEVEL`` (``"char"`` or ``"word"``),
  ``encode(text) -> ids`` and ``decode(ids) -> text``;
- ``Model(x, state=None) -> (logits, state)``, which carries the cell's state between calls as
  ``nn.LSTM`` carries ``(h, c)``, so consecutive calls equal one call over the concatenated tokens;
- ``Model.sample(ids, n, temperature, seed)`` (token ids) and ``Model.generate(prompt, n,
  temperature, seed)`` (text; only with a vocabulary).

Word-level text is read by splitting at whitespace and written by joining words with spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from search_spaces.task import Task

UNK = "<unk>"
EOS = "<eos>"  # a line end in word-level text (`workers.data.text` reads each line as its words and <eos>)
_SPECIAL = re.compile(r"<[^<>\s]+>")  # tokens such as <unk> or <eos>: not characters of the text
_WRAP = 100  # characters per line of the written VOCAB list


def is_special(token: str) -> bool:
    """Whether ``token`` is a marker such as ``<unk>`` or ``<eos>`` rather than text."""
    return _SPECIAL.fullmatch(token) is not None


def vocab_level(vocab: Sequence[str]) -> str:
    """``"char"`` when every token but the special ones (``<unk>``...) is one character, else ``"word"``."""
    plain = [t for t in vocab if not is_special(t)]
    return "char" if plain and all(len(t) == 1 for t in plain) else "word"


def _vocab_literal(vocab: Sequence[str]) -> str:
    """``VOCAB = [...]`` wrapped at `_WRAP` columns, ASCII only (escapes keep the file's bytes plain)."""
    lines, line = [], "    "
    for token in vocab:
        item = ascii(token) + ","
        if len(line) + len(item) + 1 > _WRAP and line.strip():
            lines.append(line.rstrip())
            line = "    "
        line += item + " "
    lines.append(line.rstrip())
    return "VOCAB = [\n" + "\n".join(lines) + "\n]"


def vocab_source(task: Task) -> str:
    """Module-level ``VOCAB``, ``LEVEL``, ``encode`` and ``decode`` (empty without a vocabulary)."""
    if task.vocab is None:
        return ""
    level = vocab_level(task.vocab)
    unit = "characters" if level == "char" else "words"
    if level == "char":
        words, joined, decoded = "", "", "''.join(VOCAB[i] for i in ids)"
    else:  # as `workers.data.text` reads words: each line's words, then <eos> (when the vocabulary has it)
        words = (
            "    lines = text.split('\\n')\n"
            f"    eos = [{EOS!r}] if {EOS!r} in _IDS else []\n"
            "    tokens = [w for i, line in enumerate(lines) for w in line.split() + (eos if i < len(lines) - 1 else [])]\n"
        )
        joined = f" joined with spaces, {EOS!r} a line end"
        decoded = f"' '.join(VOCAB[i] for i in ids).replace(' {EOS} ', '\\n').replace('{EOS}', '\\n')"
    split = "    tokens = list(text)\n" if level == "char" else words
    return f'''# the string of each token id, from the training text
{_vocab_literal(task.vocab)}
LEVEL = {level!r}  # 'char': text is read character by character; 'word': split at whitespace, joined with spaces
_IDS = {{token: i for i, token in enumerate(VOCAB)}}
_UNK = _IDS.get({UNK!r})


def encode(text: str) -> list[int]:
    """The token ids of ``text`` ({unit}); unknown ones become {UNK!r} when the vocabulary has it."""
{split}    unknown = sorted({{t for t in tokens if t not in _IDS}})
    if unknown and _UNK is None:
        raise ValueError(
            f"{{unknown[:10]!r}}: not in the model's vocabulary of {{len(VOCAB)}} {unit}, which has no {UNK!r}; "
            "use {unit} of the training text"
        )
    return [_IDS.get(t, _UNK) for t in tokens]


def decode(ids: list[int]) -> str:
    """The text of token ids ({unit}{joined})."""
    return {decoded}
'''


def lm_model_source(task: Task, states: Sequence[str]) -> str:
    """The ``Model`` class of a language model: embedding -> cell -> head on every step, with state."""
    state_doc = "(" + ", ".join(states) + ("," if len(states) == 1 else "") + ")"
    generate = ""
    if task.vocab is not None:
        generate = '''
    def generate(self, prompt: str, n: int, temperature: float = 1.0, seed: int | None = None) -> str:
        """Continue the text ``prompt`` with ``n`` sampled tokens; returns them as text, without the
        prompt (see `sample`). Example: ``print(model.generate("ROMEO:", 200, temperature=0.8, seed=0))``."""
        return decode(self.sample(encode(prompt), n, temperature, seed))
'''
    return f'''class Model(nn.Module):
    """Embedding -> cell over time -> linear head on every step: a language model that carries its
    state {state_doc} between calls, as ``nn.LSTM`` carries ``(h, c)``."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(INPUT_SIZE, HIDDEN_SIZE)
        self.cell = Cell(HIDDEN_SIZE, HIDDEN_SIZE)
        self.head = nn.Linear(HIDDEN_SIZE, OUTPUT_SIZE)

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """The state before any token: zeros {state_doc}, each [batch, HIDDEN_SIZE]."""
        return tuple(self.head.weight.new_zeros(batch, self.cell.hidden_size) for _ in STATES)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x: [batch, T] token ids (int64, < {task.input_size}), any T; state: what the previous call
        returned, or None (zeros) -> ([batch, T, {task.output_size}] per-step logits, the new state).

        Calls with the returned state equal one call over the concatenated tokens; when training
        with truncated backpropagation through time, pass ``tuple(s.detach() for s in state)``."""
        hs, state = self.cell(self.embedding(x), state)  # [B, T, H]
        return self.head(hs), state

    @torch.no_grad()
    def sample(self, prompt: list[int], n: int, temperature: float = 1.0, seed: int | None = None) -> list[int]:
        """Feed the token ids ``prompt``, then draw ``n`` tokens one at a time, each fed back in.

        Each token comes from softmax(logits / temperature); temperature 0 takes the most likely
        one. ``seed``: a fixed seed gives the same tokens every time (None: torch's global generator).
        """
        prompt = [int(t) for t in prompt]
        if not prompt or not all(0 <= t < INPUT_SIZE for t in prompt):
            raise ValueError(f"the prompt must be at least one token id in [0, {{INPUT_SIZE}}), got {{prompt[:10]!r}}")
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n: the number of tokens to draw must be an integer >= 0, got {{n!r}}")
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0 (0: always the most likely token), got {{temperature!r}}")
        device = self.head.weight.device
        generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
        logits, state = self(torch.tensor([prompt], device=device))
        tokens: list[int] = []
        while len(tokens) < n:
            last = logits[0, -1].double()
            if temperature == 0:
                token = int(last.argmax())
            else:
                token = int(torch.multinomial(torch.softmax(last / temperature, dim=-1), 1, generator=generator))
            tokens.append(token)
            if len(tokens) < n:
                logits, state = self(torch.tensor([[token]], device=device), state)
        return tokens
{generate}'''
