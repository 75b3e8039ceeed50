"""`BlockLayout`: the table of non-zero blocks of a block-sparse ``[N, K]`` weight (CSR and CSC)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockLayout:
    """Non-zero ``block = (bn, bk)`` tiles of an ``[N, K]`` matrix.

    ``row_ptr``/``row_cols``: for block row ``r``, the block columns ``row_cols[row_ptr[r]:row_ptr[r+1]]``
    (forward); ``col_ptr``/``col_rows`` the same by block column (input gradient); ``blocks``
    ``[nnz, 2]`` the (row, column) of every non-zero block (weight gradient).
    """

    shape: tuple[int, int]
    block: tuple[int, int]
    row_ptr: torch.Tensor
    row_cols: torch.Tensor
    col_ptr: torch.Tensor
    col_rows: torch.Tensor
    blocks: torch.Tensor

    @classmethod
    def from_block_mask(cls, block_mask: torch.Tensor, block: tuple[int, int]) -> BlockLayout:
        """From a boolean ``[N / bn, K / bk]`` mask of the non-zero blocks."""
        nbr, nbc = block_mask.shape
        bm = block_mask.bool().cpu()
        blocks = bm.nonzero().to(torch.int32)  # row-major: sorted by row, then column
        csc = bm.t().nonzero().to(torch.int32)  # sorted by column, then row
        row_ptr = torch.zeros(nbr + 1, dtype=torch.int32)
        row_ptr[1:] = bm.sum(1).cumsum(0)
        col_ptr = torch.zeros(nbc + 1, dtype=torch.int32)
        col_ptr[1:] = bm.sum(0).cumsum(0)
        return cls((nbr * block[0], nbc * block[1]), block, row_ptr, blocks[:, 1].contiguous(), col_ptr,
                   csc[:, 1].contiguous(), blocks.contiguous())

    @classmethod
    def from_mask(cls, mask: torch.Tensor, block: tuple[int, int]) -> BlockLayout:
        """Blocks of an element mask ``[N, K]`` that hold any non-zero (exact for masked weights)."""
        N, K = mask.shape
        bn, bk = block
        if N % bn or K % bk:
            raise ValueError(f"a {N}x{K} mask does not tile by {bn}x{bk}")
        return cls.from_block_mask(mask.reshape(N // bn, bn, K // bk, bk).ne(0).any(3).any(1), block)

    def dense_mask(self) -> torch.Tensor:
        """The ``[N, K]`` element mask of the non-zero blocks."""
        bn, bk = self.block
        bm = torch.zeros(self.shape[0] // bn, self.shape[1] // bk, dtype=torch.bool)
        bm[self.blocks[:, 0].long(), self.blocks[:, 1].long()] = True
        return bm.repeat_interleave(bn, 0).repeat_interleave(bk, 1)

    def density(self) -> float:
        bn, bk = self.block
        return len(self.blocks) / ((self.shape[0] // bn) * (self.shape[1] // bk))

    def to(self, device: torch.device) -> BlockLayout:
        move = lambda t: t.to(device)  # noqa: E731
        return BlockLayout(self.shape, self.block, move(self.row_ptr), move(self.row_cols), move(self.col_ptr),
                           move(self.col_rows), move(self.blocks))
