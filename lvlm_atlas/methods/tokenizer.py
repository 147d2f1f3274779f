"""A byte-level tokenizer for the random-weight presets (no download; round-trips any UTF-8 text)."""
from __future__ import annotations

PAD, BOS, EOS = 0, 1, 2
OFFSET = 3


class ByteTokenizer:
    pad_token_id = PAD
    bos_token_id = BOS
    eos_token_id = EOS

    def __init__(self, vocab_size: int = 320):
        if vocab_size < OFFSET + 256 + 4:
            raise ValueError("vocab_size too small for a byte tokenizer with special tokens")
        self.vocab_size = vocab_size

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [b + OFFSET for b in text.encode("utf-8")]
        return [BOS] + ids if add_bos else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        data = bytes(i - OFFSET for i in ids if OFFSET <= i < OFFSET + 256)
        if not skip_special_tokens:
            return data.decode("utf-8", errors="replace")
        return data.decode("utf-8", errors="replace")
