"""Argument helpers shared by the run and bench commands."""
from __future__ import annotations

import argparse

import yaml


def parse_params(items: list[str] | None) -> dict:
    """`k=v` strings -> dict; values parsed as YAML scalars/lists (2 -> int, 0.5 -> float, [8,16] -> list)."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--param expects key=value, got {item!r}")
        parsed = yaml.safe_load(value)
        out[key.strip()] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def parse_budget(text: str | None):
    """'64' -> 64 tokens kept; '0.25' -> a quarter of the visual tokens; None/'none' -> method default."""
    if text is None or str(text).lower() in ("none", "default"):
        return None
    value = yaml.safe_load(str(text))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise argparse.ArgumentTypeError(f"budget must be a token count or a fraction, got {text!r}")
    return value


def add_model_options(parser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    parser.add_argument("--dtype", default=None, help="float32 / float16 / bfloat16 (default: fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--attn", default=None, choices=["sdpa", "eager", "flash_attention_2"],
                        help="attention backend (default: flash-attn when installed on GPU, else sdpa)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
