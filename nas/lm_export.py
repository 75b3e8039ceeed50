"""Exporting a language model: ONNX as one step with the state in and out, and a generated sample.

A stateful model unrolled over a fixed sequence length is of little use for generation, so the ONNX
file of an ``lm`` task holds ONE step: inputs ``x`` ``[batch, 1]`` token ids and ``state_<s>``
``[batch, H]`` for each state ``s`` of the cell; outputs ``logits`` ``[batch, 1, V]`` and
``next_state_<s>``. A caller feeds the next states back in, token by token (`step_max_difference`
checks exactly that against torch over several steps).

``sample.txt``: text that the exported ``cell.py`` generates from a prompt, with a fixed seed, so a
reader sees at a glance what the trained model writes (`write_sample`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nas.lm_codegen import is_special, vocab_level
from search_spaces.task import Task

SAMPLE_FILE = "sample.txt"
SAMPLE_TOKENS = {"char": 200, "word": 50}  # about a paragraph either way
SAMPLE_TEMPERATURE = 0.8
PROMPT_TOKENS = {"char": 16, "word": 4}
CHECK_STEPS = 12  # steps fed through onnxruntime at export time


class OneStep(torch.nn.Module):
    """A stateful language model (cell.py's ``Model``) as one step, with the state as plain tensors:
    ``(x [B, 1], *state) -> (logits [B, 1, V], *next state)``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, next_state = self.model(x, state)
        return (logits, *next_state)


def step_names(states: Sequence[str]) -> tuple[list[str], list[str]]:
    """ONNX input and output names of one step: ``x, state_h, ...`` and ``logits, next_state_h, ...``."""
    return ["x", *(f"state_{s}" for s in states)], ["logits", *(f"next_state_{s}" for s in states)]


def step_inputs(model: torch.nn.Module, task: Task, batch: int = 2, *, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A random step's inputs: token ids ``[batch, 1]`` and a random state (the export traces with it)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, task.input_size, (batch, 1), generator=gen)
    state = tuple(torch.randn(s.shape, generator=gen) * 0.5 for s in model.initial_state(batch))
    return (x, *state)


def step_max_difference(session: Any, model: torch.nn.Module, task: Task, *, batch: int = 5,
                        steps: int = CHECK_STEPS) -> float:
    """Largest absolute difference between ``steps`` onnxruntime steps, each fed the state the last
    returned (from zeros), and one torch call over the same tokens: every step's logits and the final
    state."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, task.input_size, (batch, steps), generator=gen)
    with torch.no_grad():
        expected, expected_state = model(x)
    names = [i.name for i in session.get_inputs()]
    state = [s.numpy() for s in model.initial_state(batch)]
    worst = 0.0
    for t in range(steps):
        logits, *state = session.run(None, dict(zip(names, [x[:, t : t + 1].numpy(), *state])))
        worst = max(worst, float(abs(logits - expected[:, t : t + 1].numpy()).max()))
    for got, want in zip(state, expected_state):
        worst = max(worst, float(abs(got - want.numpy()).max()))
    return worst


def sample_prompt(task: Task, start: Sequence[int] | None = None) -> str:
    """A short prompt in the model's vocabulary: the first tokens of the training text ``start``
    (up to the first newline, and before any special token such as ``<unk>``), or else its first
    token that starts with a letter or digit (or at least is neither whitespace nor special)."""
    assert task.vocab is not None
    level = vocab_level(task.vocab)
    words: list[str] = []
    for i in list(start or [])[: PROMPT_TOKENS[level]]:
        token = task.vocab[int(i)]
        if is_special(token):
            break
        words.append(token)
        if token == "\n":
            break
    text = ("" if level == "char" else " ").join(words)
    if text.strip():
        return text
    printable = [t for t in task.vocab if t.strip() and not is_special(t)]
    return next((t for t in printable if t[0].isalnum()), printable[0] if printable else task.vocab[0])


def dataset_prompt(data: Any) -> str | None:
    """The sample prompt of a text data set (a `workers.data.Dataset` of an ``lm`` task with a
    vocabulary): the start of its first training sequence; None for other data."""
    task = data.task
    if task.objective != "lm" or task.vocab is None:
        return None
    x = data.train.x
    row = x[0] if x.ndim >= 2 else x  # [N, T] sequences, or one stream
    return sample_prompt(task, None if x.is_floating_point() else row[: max(PROMPT_TOKENS.values())].tolist())


def write_sample(model: torch.nn.Module, task: Task, out: Path, *, prompt: str, seed: int) -> dict:
    """Write ``SAMPLE_FILE``: ``prompt`` and what ``model.generate`` (cell.py's) continues it with.
    Returns the manifest entry that says how to draw it again."""
    assert task.vocab is not None
    level = vocab_level(task.vocab)
    tokens = SAMPLE_TOKENS[level]
    text = model.generate(prompt, tokens, temperature=SAMPLE_TEMPERATURE, seed=seed)
    separator = "" if level == "char" else " "
    tmp = out / (SAMPLE_FILE + ".tmp")
    tmp.write_text(prompt + separator + text + "\n", encoding="utf-8")
    tmp.replace(out / SAMPLE_FILE)
    return {"prompt": prompt, "tokens": tokens, "temperature": SAMPLE_TEMPERATURE, "seed": seed, "level": level,
            "command": f"model.generate({prompt!r}, {tokens}, temperature={SAMPLE_TEMPERATURE}, seed={seed})"}
