"""Text for language modelling: ``data: {name: text}`` (the user's UTF-8 files) and the embedded
``data: {name: tinyshakespeare}`` corpus, at character or word level.

- ``path``: one file, split by position into ``split: [train, val, test]`` (default 0.9/0.05/0.05:
  the first 90% trains, the next 5% validates, the last 5% tests); or ``train_path`` with optional
  ``val_path`` (else the last ``val_fraction``, default 0.05, of the training text) and optional
  ``test_path`` (without it there is no test split).
- ``level: char`` (every character, newlines included) or ``word`` (whitespace-separated words, an
  ``<eos>`` token at the end of every line, as in the Penn Treebank setup).
- The vocabulary comes from the training text only: its ``vocab_size`` most frequent tokens (word
  level default 10,000; char level default: every character), plus ``<unk>`` when any token of any
  split falls outside them, at most `VOCAB_LIMIT` ids.
- ``bptt``: steps per training window (default 128 for char, 35 for word; 8..1024), the Task's
  ``seq_len``. Every split must hold at least one window of ``bptt`` steps.

Each split is a token stream: `Split.x` ``[L]`` the inputs and `Split.y` ``[L]`` the next tokens
(``y[i] == x[i + 1]``), in text order; `workers.lm_training` lays it out in columns and carries the
hidden state along them (truncated BPTT). Bad files raise a `DataError` naming the file and the fix.
"""

from __future__ import annotations

import lzma
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch

from search_spaces import Task
from workers.data.base import Dataset, DataError, Split
from workers.data.user import check_file_options, split_fractions, val_fraction_of

LEVELS = ("char", "word")
DEFAULT_BPTT = {"char": 128, "word": 35}
BPTT_RANGE = (8, 1024)
DEFAULT_VOCAB = {"char": None, "word": 10_000}
VOCAB_LIMIT = 50_000
DEFAULT_SPLIT = (0.9, 0.05, 0.05)
DEFAULT_VAL_FRACTION = 0.05
UNK, EOS = "<unk>", "<eos>"
UNIT = {"char": "characters", "word": "words"}
CORPUS = "tinyshakespeare.txt.xz"  # in workers/data/corpora/, with its provenance in README.md there


def read_text(file: Path, where: str) -> str:
    """The file's text (UTF-8, a BOM dropped, ``\\r\\n`` read as ``\\n``); `DataError` for a missing,
    empty, binary or undecodable file."""
    if not file.is_file():
        raise DataError(f"{where}: file {str(file)!r} does not exist; check the path (relative paths start where nas runs)")
    raw = file.read_bytes()
    return decode_text(raw, where)


def decode_text(raw: bytes, where: str) -> str:
    """Decode and check the bytes of a text file (see `read_text`)."""
    if not raw.strip():
        raise DataError(f"{where}: the file is empty; give a UTF-8 text file with the text to model")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{where}: holds a NUL byte at offset {nul}, so it is binary, not text; give a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{where}: is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                        "convert it, e.g. iconv -f LATIN1 -t UTF-8 FILE > FILE.utf8") from None
    return text.replace("\r\n", "\n")


def tokenize(text: str, level: str) -> list[str]:
    """Characters, or per line its words and an ``<eos>`` (blank lines give nothing)."""
    if level == "char":
        return list(text)
    tokens: list[str] = []
    for line in text.split("\n"):
        words = line.split()
        if words:
            tokens += words
            tokens.append(EOS)
    return tokens


def build_vocab(train: Sequence[str], others: Sequence[Sequence[str]], vocab_size: int | None, where: str) -> tuple[str, ...]:
    """The ``vocab_size`` most frequent training tokens (all when None; ties by the token), plus `UNK`
    when a token of ``train`` or ``others`` falls outside them; `DataError` over `VOCAB_LIMIT`."""
    counts = Counter(train)
    ranked = sorted(counts, key=lambda t: (-counts[t], t))
    vocab = ranked if vocab_size is None else ranked[:vocab_size]
    if len(vocab) + 1 > VOCAB_LIMIT:
        raise DataError(f"{where}: the vocabulary would hold {len(ranked):,} tokens, over the limit of {VOCAB_LIMIT - 1:,}; "
                        "set data.vocab_size lower (rarer tokens become <unk>)")
    known = set(vocab)
    if UNK not in known and (len(vocab) < len(ranked) or any(t not in known for part in others for t in part)):
        vocab.append(UNK)
    return tuple(vocab)


def encode(tokens: Sequence[str], vocab: tuple[str, ...]) -> torch.Tensor:
    """Token ids ``[L]`` (int64); tokens outside ``vocab`` become `UNK`'s id."""
    index = {t: i for i, t in enumerate(vocab)}
    unk = index.get(UNK, -1)
    return torch.tensor([index.get(t, unk) for t in tokens], dtype=torch.int64)


def stream(ids: torch.Tensor) -> Split:
    """A token stream as a split: inputs ``ids[:-1]`` and their next tokens ``ids[1:]``."""
    return Split(ids[:-1], ids[1:])


def windows(split: Split, bptt: int) -> Split:
    """A stream cut into consecutive windows of ``bptt`` steps, ``x`` and ``y`` ``[N, bptt]`` (the
    last partial window left off), for code that samples independent sequences (the hypernetwork);
    a split that is no stream (``x`` already ``[N, T]``) comes back as it is."""
    if split.x.dim() != 1:
        return split
    n = len(split) // bptt
    return Split(split.x[: n * bptt].view(n, bptt), split.y[: n * bptt].view(n, bptt))


def sequences(data: Dataset, role: str) -> Split:
    """Split ``role`` of ``data`` as sequences: a language model's stream in ``seq_len`` windows."""
    split = getattr(data, role)
    return windows(split, data.task.seq_len) if data.task.objective == "lm" else split


def _check_options(level: str, bptt: int | None, vocab_size: int | None) -> tuple[int, int | None]:
    """``level``, ``bptt`` and ``vocab_size`` checked; (bptt, vocab_size) with the level's defaults."""
    if level not in LEVELS:
        raise DataError(f"data.level: expected char or word, got {level!r}")
    bptt = DEFAULT_BPTT[level] if bptt is None else bptt
    if isinstance(bptt, bool) or not isinstance(bptt, int) or not BPTT_RANGE[0] <= bptt <= BPTT_RANGE[1]:
        raise DataError(f"data.bptt: expected an integer number of steps in {BPTT_RANGE[0]}..{BPTT_RANGE[1]}, got {bptt!r}")
    if vocab_size is not None and (isinstance(vocab_size, bool) or not isinstance(vocab_size, int)
                                   or not 2 <= vocab_size < VOCAB_LIMIT):
        raise DataError(f"data.vocab_size: expected an integer in 2..{VOCAB_LIMIT - 1:,}, got {vocab_size!r}")
    return bptt, DEFAULT_VOCAB[level] if vocab_size is None else vocab_size


def _by_position(tokens: list[str], fractions: Sequence[float]) -> list[list[str]]:
    """Consecutive parts of ``tokens`` of the given fractions (the last part takes the rest)."""
    bounds = [0]
    for f in fractions[:-1]:
        bounds.append(bounds[-1] + int(len(tokens) * f))
    bounds.append(len(tokens))
    return [tokens[a:b] for a, b in zip(bounds, bounds[1:])]


def _pct(f: float) -> str:
    return f"{100 * f:g}%"


def make_dataset(name: str, parts: dict[str, list[str]], sources: dict[str, str], wheres: dict[str, str], *,
                 level: str, vocab_size: int | None, bptt: int) -> Dataset:
    """Vocabulary from ``parts["train"]``, every part encoded and checked to hold one bptt window."""
    for role, tokens in parts.items():
        if len(tokens) < bptt + 1:
            title = {"train": "training", "val": "validation", "test": "test"}[role]
            raise DataError(f"{wheres[role]}: the {title} split holds {len(tokens):,} {UNIT[level]}, fewer than one "
                            f"window of bptt={bptt} steps needs ({bptt + 1}); give more text, a larger split or a smaller data.bptt")
    others = [parts[r] for r in ("val", "test") if r in parts]
    vocab = build_vocab(parts["train"], others, vocab_size, wheres["train"])
    splits = {role: stream(encode(tokens, vocab)) for role, tokens in parts.items()}
    empty = Split(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    task = Task(input_size=len(vocab), seq_len=bptt, output_size=len(vocab), input_kind="tokens", objective="lm",
                vocab=vocab)
    return Dataset(name, task, splits["train"], splits["val"], splits.get("test", empty),
                   sources={**sources, "test": sources.get("test", "none")},
                   default_metric="perplexity" if level == "word" else "bpc")


def _single(name: str, text: str, where: str, stem: str, *, level: str, vocab_size: int | None, bptt: int,
            split: Sequence[float] | None) -> Dataset:
    """One text split by position into train/validation/test."""
    fractions = split_fractions(split, DEFAULT_SPLIT)
    tokens = tokenize(text, level)
    roles = ("train", "val", "test") if fractions[2] > 0 else ("train", "val")
    parts = dict(zip(roles, _by_position(tokens, fractions if fractions[2] > 0 else fractions[:2])))
    sources = {"train": f"first {_pct(fractions[0])} of {stem}, {level} level",
               "val": f"next {_pct(fractions[1])} of {stem}, by position"}
    if "test" in parts:
        sources["test"] = f"last {_pct(fractions[2])} of {stem}, by position"
    return make_dataset(name, parts, sources, dict.fromkeys(parts, where), level=level, vocab_size=vocab_size, bptt=bptt)


def text(
    path: str | None = None,
    train_path: str | None = None,
    val_path: str | None = None,
    test_path: str | None = None,
    level: str = "char",
    vocab_size: int | None = None,
    split: Sequence[float] | None = None,
    val_fraction: float | None = None,
    bptt: int | None = None,
) -> Dataset:
    """The user's UTF-8 text files as a language modelling task (see the module docstring)."""
    check_file_options(path, train_path, val_path, test_path, split, val_fraction)
    bptt, vocab_size = _check_options(level, bptt, vocab_size)
    if path is not None:
        file = Path(path).expanduser()
        where = f"data.path: {file.name}"
        return _single(file.stem, read_text(file, where), where, file.name, level=level, vocab_size=vocab_size,
                       bptt=bptt, split=split)
    files = {role: Path(p).expanduser() for role, p in (("train", train_path), ("val", val_path), ("test", test_path)) if p}
    wheres = {role: f"data.{role}_path: {f.name}" for role, f in files.items()}
    parts = {role: tokenize(read_text(f, wheres[role]), level) for role, f in files.items()}
    stem = files["train"].name
    sources = {"train": f"{stem}, {level} level"} | {r: files[r].name for r in ("val", "test") if r in files}
    if "val" not in parts:
        fraction = val_fraction_of(val_fraction, DEFAULT_VAL_FRACTION)
        parts["train"], parts["val"] = _by_position(parts["train"], (1 - fraction, fraction))
        sources["train"] = f"first {_pct(1 - fraction)} of {stem}, {level} level"
        sources["val"] = f"last {_pct(fraction)} of {stem}, by position"
        wheres["val"] = wheres["train"]
    return make_dataset(files["train"].stem, parts, sources, wheres, level=level, vocab_size=vocab_size, bptt=bptt)


def corpus_bytes() -> bytes:
    """The embedded Tiny Shakespeare text (decompressed from the package; no download)."""
    return lzma.decompress((resources.files("workers.data") / "corpora" / CORPUS).read_bytes())


def tinyshakespeare(level: str = "char", vocab_size: int | None = None, split: Sequence[float] | None = None,
                    bptt: int | None = None) -> Dataset:
    """Tiny Shakespeare (char-rnn's corpus, public domain, shipped compressed in the package), split
    by position like one ``text`` file (default 90/5/5)."""
    bptt, vocab_size = _check_options(level, bptt, vocab_size)
    where = "data: tinyshakespeare"
    return _single("tinyshakespeare", decode_text(corpus_bytes(), where), where, "tinyshakespeare.txt",
                   level=level, vocab_size=vocab_size, bptt=bptt, split=split)
