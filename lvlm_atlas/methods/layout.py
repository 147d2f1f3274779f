"""TokenLayout: where the visual tokens of one request sit, derived from the model's own image-token id."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TokenLayout:
    """Positions (indices into the merged input sequence, batch row 0) of the visual and text tokens.

    `grids[i]` is the (rows, cols) arrangement of image i's tokens when the model lays them out on a
    regular grid (LLaVA-1.5; Qwen2-VL after the 2x2 merge); None when the layout is irregular
    (LLaVA-NeXT: base image + unpadded crops + newline tokens).
    """

    seq_len: int
    visual_index: torch.Tensor                 # (n_visual,) long, increasing
    image_spans: list[tuple[int, int]]         # [start, end) per contiguous image run
    grids: list[tuple[int, int] | None] = field(default_factory=list)

    @property
    def n_visual(self) -> int:
        return int(self.visual_index.numel())

    @property
    def text_index(self) -> torch.Tensor:
        mask = torch.ones(self.seq_len, dtype=torch.bool, device=self.visual_index.device)
        mask[self.visual_index] = False
        return mask.nonzero().squeeze(1)

    @property
    def is_visual(self) -> torch.Tensor:
        mask = torch.zeros(self.seq_len, dtype=torch.bool, device=self.visual_index.device)
        mask[self.visual_index] = True
        return mask

    @classmethod
    def from_input_ids(cls, input_ids: torch.Tensor, image_token_id: int,
                       grids: list[tuple[int, int] | None] | None = None) -> "TokenLayout":
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}")
        if input_ids.shape[0] != 1:
            raise NotImplementedError(
                f"token-compression methods run with batch size 1 (got {input_ids.shape[0]}): "
                "call the model once per request")
        is_vis = input_ids[0] == image_token_id
        visual_index = is_vis.nonzero().squeeze(1)
        spans: list[tuple[int, int]] = []
        if visual_index.numel():
            idx = visual_index.tolist()
            start = prev = idx[0]
            for i in idx[1:]:
                if i != prev + 1:
                    spans.append((start, prev + 1))
                    start = i
                prev = i
            spans.append((start, prev + 1))
        if grids is not None and len(grids) != len(spans):
            grids = [None] * len(spans)  # e.g. two images adjacent in the prompt: no per-image grid
        return cls(int(input_ids.shape[1]), visual_index, spans, list(grids) if grids else [None] * len(spans))
