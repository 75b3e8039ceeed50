"""`HyperNetwork`: an LSTM that reads a Spec and emits every weight of its candidate network.

Sources:
    Chandra et al., dependency-preserving RNN hypernetworks: one recurrent hypernetwork walks the
    target's weight tensors in order, so a layer's weights depend (through the hidden state) on the
    layers generated before it.
    Ortiz et al., "Magnitude Invariant Parametrizations Improve Hypernetwork Learning" (MIP):
    constant-norm inputs and a residual output theta = theta0 + delta, theta0 initialised like a
    normal layer, so the candidate starts as a normally initialised network and input scale does not
    leak into output scale.
    Brock et al., SMASH: train the hypernetwork over random architectures, rank them by the accuracy
    their generated weights give (see `hyper.train`).

One forward is one LSTM pass over ``[decision tokens ..., walk steps ...]``: a decision step embeds the
Spec's tokens (`hyper.tokens`); a walk step embeds the role of a ``tile x tile`` chunk of one tensor
(kind, source, destination node's op and activation, slot, tile position). The LSTM output at a walk
step is decoded linearly into the chunk (``delta``), added to a ``theta0`` chunk from a bank hashed by
the tensor's role, and scaled by the tensor's init bound (1/sqrt(fan_in)).

Example::

    net = HyperNetwork(HyperConfig())
    params = net.generate(spec, task, masks=masks_of(model))   # {"cell.weights.x": [k*H, in], ...}
"""

from __future__ import annotations

import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces import Spec, Task
from hyper.config import HyperConfig
from hyper.tokens import Step, hidden_value, spec_steps, token_id
from hyper.walk import Piece, walk


def _bank_index(key: str, tile: tuple[int, int], size: int) -> int:
    return zlib.crc32(f"{key}|{tile[0]},{tile[1]}".encode()) % size


class HyperNetwork(nn.Module):
    """The RNN hypernetwork; `generate` gives a candidate's parameters as a differentiable dict."""

    def __init__(self, config: HyperConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or HyperConfig()
        gen = torch.Generator().manual_seed(cfg.seed)
        with torch.random.fork_rng(devices=[]):  # the layers' default inits: from cfg.seed, global RNG untouched
            torch.manual_seed(cfg.seed)
            self.tokens = nn.Embedding(cfg.vocab, cfg.embed, padding_idx=0)
            self.value = nn.Linear(2, cfg.embed)  # a number in [0, 1], encoded (cos, sin) under MIP
            self.lstm = nn.LSTM(cfg.embed, cfg.hidden, num_layers=cfg.layers)
            self.tile_head = nn.Linear(cfg.hidden, cfg.tile * cfg.tile)
            self.vec_head = nn.Linear(cfg.hidden, cfg.tile)
        t = cfg.tile
        # theta0: "initialised like a normal layer" -- U(-1, 1), times the tensor's bound at use
        self.theta0 = nn.Parameter(torch.rand(cfg.bank, t, t, generator=gen) * 2 - 1)
        self.theta0_bias = nn.Parameter(torch.rand(cfg.bias_bank, t, generator=gen) * 2 - 1)
        with torch.no_grad():
            for head in (self.tile_head, self.vec_head):
                if cfg.mip:  # delta starts near zero: the candidate starts as a normal init
                    head.weight.normal_(0.0, cfg.delta_init, generator=gen)
                    head.bias.zero_()

    # ---- planning: Spec -> steps ----------------------------------------------------------------
    def _encode_steps(self, steps: list[Step]) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        ids = torch.zeros(len(steps), cfg.max_bag, dtype=torch.long)
        for i, step in enumerate(steps):
            bag = [token_id(tok, cfg.vocab) for tok in step.tokens[: cfg.max_bag]]
            ids[i, : len(bag)] = torch.tensor(bag)
        values = torch.tensor([s.value for s in steps], dtype=torch.float32)
        return ids, values

    def plan(self, spec: Spec, task: Task) -> tuple[list[Step], list[Piece], list[Step]]:
        """(decision steps, pieces in walk order, walk steps: one per chunk of each piece)."""
        pieces = walk(spec, task)
        chunks = [
            Step([*p.role, f"tile:{r},{c}"], hidden_value(p.cols or 1), p.param, (r, c))
            for p in pieces
            for r, c in self._tiles(p)
        ]
        return spec_steps(spec), pieces, chunks

    def _inputs(self, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """LSTM inputs ``[S, E]``: summed token embeddings plus the encoded number."""
        if self.config.mip:
            angle = values * (math.pi / 2)
            enc = torch.stack([angle.cos(), angle.sin()], dim=-1)  # constant norm 1
        else:
            enc = torch.stack([values, torch.ones_like(values)], dim=-1)
        x = self.tokens(ids).sum(1) + self.value(enc)  # [S, E]
        if self.config.mip:
            x = F.normalize(x, dim=-1) * math.sqrt(self.config.embed)  # constant-norm inputs
        return x

    # ---- generation -----------------------------------------------------------------------------
    def forward(self, spec: Spec, task: Task) -> dict[str, torch.Tensor]:
        """The parameters of ``build(spec, task)`` (no masks applied), keyed by parameter name."""
        cfg, t = self.config, self.config.tile
        decisions, pieces, chunks = self.plan(spec, task)
        ids, values = self._encode_steps(decisions + chunks)
        out, _ = self.lstm(self._inputs(ids, values)[:, None])  # [S, 1, D]
        h = out[len(decisions) :, 0]  # [C, D]: one row per chunk
        tiles = [(p, tile) for p in pieces for tile in self._tiles(p)]  # one per chunk, in walk order
        is_vec = torch.tensor([not p.cols for p, _ in tiles])
        banks = torch.tensor([_bank_index(p.key, tile, cfg.bank if p.cols else cfg.bias_bank) for p, tile in tiles])
        mat_idx, vec_idx = (~is_vec).nonzero().squeeze(1), is_vec.nonzero().squeeze(1)
        mats = self.tile_head(h[mat_idx]).view(-1, t, t)  # [Cm, t, t]
        vecs = self.vec_head(h[vec_idx])  # [Cv, t]
        if cfg.mip:
            mats = self.theta0[banks[mat_idx]] + mats
            vecs = self.theta0_bias[banks[vec_idx]] + vecs
        params: dict[str, list[torch.Tensor]] = {}
        m = v = 0
        for p in pieces:
            n_rows, n_cols = math.ceil(p.rows / t), max(1, math.ceil(p.cols / t))
            if p.cols:
                block = mats[m : m + n_rows * n_cols].view(n_rows, n_cols, t, t)
                tensor = block.permute(0, 2, 1, 3).reshape(n_rows * t, n_cols * t)[: p.rows, : p.cols]
                m += n_rows * n_cols
            else:
                tensor = vecs[v : v + n_rows].reshape(-1)[: p.rows]
                v += n_rows
            params.setdefault(p.param, []).append(tensor * p.bound)
        return {name: parts[0] if len(parts) == 1 else torch.cat(parts) for name, parts in params.items()}

    def _tiles(self, piece: Piece) -> list[tuple[int, int]]:
        """(row, column) tile positions of a piece; a vector is one column of tiles."""
        t = self.config.tile
        return [(r, c) for r in range(math.ceil(piece.rows / t)) for c in range(max(1, math.ceil(piece.cols / t)))]

    def generate(
        self, spec: Spec, task: Task, masks: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """`forward` with sparsity masks (``{param name: mask}``, see `masks_of`) multiplied in."""
        params = self(spec, task)
        for name, mask in (masks or {}).items():
            params[name] = params[name] * mask
        return params

    # ---- persistence ----------------------------------------------------------------------------
    def weights(self) -> dict[str, Any]:
        """A plain payload (config + CPU state dict) for Ray object transfer or `torch.save`."""
        return {"config": self.config.to_dict(), "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}}

    @classmethod
    def from_weights(cls, payload: dict[str, Any]) -> HyperNetwork:
        net = cls(HyperConfig.from_dict(payload["config"]))
        net.load_state_dict(payload["state_dict"])
        return net

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write the payload (plus ``extra`` entries) atomically: temp file, then `os.replace`."""
        save_atomic({**self.weights(), **extra}, path)

    @classmethod
    def load(cls, path: str | Path) -> HyperNetwork:
        return cls.from_weights(torch.load(path, map_location="cpu", weights_only=False))


def ensemble_from_weights(payload: dict[str, Any]) -> list[HyperNetwork]:
    """The network of a payload followed by its ``snapshots`` (a `HyperTrainer` checkpoint or
    `hyper.HyperActor.weights`): what `hyper.proxy_score` averages over."""
    extra = [{"config": payload["config"], "state_dict": s} for s in payload.get("snapshots", [])]
    return [HyperNetwork.from_weights(p) for p in (payload, *extra)]


def save_atomic(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
