"""Up-front checks of user input for the run, bench and new commands.

Every check runs before any model loads or any network call, and a failure is ONE line on stderr
saying what was wrong and what to write instead (exit code 2): `UsageError` carries that line.
"""
from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
NETWORK_TIMEOUT_S = 3.0


class UsageError(Exception):
    """A user error; str(self) is the one-line message (without the 'error: ' prefix)."""


def fail(exc: BaseException | str, code: int = 2) -> int:
    """Print one line `error: ...` on stderr and return the exit code."""
    text = " ".join(str(exc).split()) if str(exc).strip() else type(exc).__name__
    print(f"error: {text}", file=sys.stderr)
    return code


def _presets() -> dict:
    from lvlm_atlas.methods import presets

    return presets.PRESETS


def reachable(host: str, port: int = 443, timeout: float = NETWORK_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within `timeout` seconds (DNS included)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def check_model(name: str, what: str = "--model") -> None:
    """A preset name, or a hub id that is in the local cache or downloadable now."""
    presets = _presets()
    if name in presets:
        return
    if not HUB_ID_RE.match(name):
        raise UsageError(f"{what} {name!r} is not a known model: write a preset ({', '.join(presets)}) "
                         f"or a Hugging Face hub id such as llava-hf/llava-1.5-7b-hf")
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return  # in the local cache
    host = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    if _hf_offline() or not reachable(host):
        raise UsageError(f"{what} {name!r} is not in the local Hugging Face cache and {host} cannot be reached "
                         f"(offline): download it first (huggingface-cli download {name}) or use a preset such as "
                         f"{next(iter(presets))}")


def check_image(path: str, what: str = "--image") -> None:
    """The file exists and PIL can open, verify and decode it."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path}: no such file; write the path of an image file (PNG, JPEG, ...)")
    if not p.is_file():
        raise UsageError(f"{what} {path} is a folder; write the path of an image file (PNG, JPEG, ...)")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.verify()          # structure and checksums
        with Image.open(p) as im:
            im.load()            # the pixel data itself (verify misses truncated files)
    except UnidentifiedImageError:
        raise UsageError(f"{what} {path} is not an image PIL can read; write the path of a PNG or JPEG image") from None
    except (OSError, SyntaxError, ValueError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"{what} {path} is a damaged image ({why}); write the path of an intact PNG or JPEG image") \
            from None


def check_budget(text: str | None, what: str = "--budget"):
    """None (method default), a whole number of visual tokens >= 1, or a fraction in (0, 1]."""
    from lvlm_atlas.cli._common import parse_budget

    hint = "write a number of visual tokens kept (e.g. 64) or a fraction of them (e.g. 0.25)"
    try:
        value = parse_budget(text)
    except Exception:  # noqa: BLE001 - argparse.ArgumentTypeError or a YAML error: both mean "not a number"
        raise UsageError(f"{what} {text!r} is not a number; {hint}") from None
    if value is None:
        return None
    if value <= 0:
        raise UsageError(f"{what} {text} must be positive; {hint}")
    if isinstance(value, float) and value > 1:
        if value != int(value):
            raise UsageError(f"{what} {text}: a fraction is at most 1 and a token count is a whole number; {hint}")
        value = int(value)
    return value


def preset_visual_tokens(name: str) -> int | None:
    """Visual tokens a preset makes of any image (presets resize every image to one size), from its config
    alone (no weights); None for hub models and layouts whose count depends on the image (anyres)."""
    preset = _presets().get(name)
    if preset is None or preset.family not in ("llava", "qwen2_vl", "qwen2_5_vl"):
        return None
    v = preset.build_config().vision_config
    if preset.family == "llava":
        return (v.image_size // v.patch_size) ** 2
    step = v.patch_size * v.spatial_merge_size
    w, h = preset.image_size
    return (w // step) * (h // step)


def check_visual_budget(budget, visual_tokens: int | None, model: str) -> None:
    """A token count may not exceed the visual tokens the model produces for this input."""
    if visual_tokens is not None and isinstance(budget, int) and budget > visual_tokens:
        raise UsageError(f"--budget {budget} is more than the {visual_tokens} visual tokens {model} makes of this "
                         f"image; write at most {visual_tokens} or a fraction such as 0.25")


def check_method(name: str, params: dict) -> object:
    """Instantiate the method (checks that it exists and that its parameters are known and valid)."""
    from lvlm_atlas.methods import registry

    try:
        return registry.create(name, **params)
    except KeyError as exc:
        raise UsageError(f"{exc}; see `atlas list`") from None
    except (TypeError, ValueError) as exc:
        msg = " ".join(str(exc).split())
        raise UsageError(msg if msg.startswith("method ") else f"method {name!r}: {msg}") from None


DTYPES = ("float32", "float16", "bfloat16")


def check_device(device: str, dtype: str | None) -> None:
    """--device names an available device; --dtype a floating-point type."""
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not supported; write one of {', '.join(DTYPES)}")
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise UsageError(f"--device {device!r} is not a device; write cpu, cuda or cuda:N")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA GPU is available here; write --device cpu")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here; "
                             f"write cuda:0 to cuda:{torch.cuda.device_count() - 1}")
