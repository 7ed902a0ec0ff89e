"""Model files: safetensors only (never pickle), with the config and provenance in the metadata.

A model's id is a prefix of its file checksum: profiles record it so that conditioning made for one
model is never silently applied to another.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from mss_cli.errors import MssError
from mss_cli.files import write_atomically

DEFAULT_WEIGHTS = "mss-fewshot.safetensors"
BASELINE_WEIGHTS = "mss-classcond.safetensors"  # the class-conditioned baseline (mss separate --class)
HEADER_SLACK = 16 << 20  # room for a weights file's header and metadata beyond its tensors


def shipped_weights(name: str = DEFAULT_WEIGHTS) -> Path:
    """The shipped model: installed as ``mss_cli/shipped/`` by pip, or ``weights/`` in a checkout."""
    package = Path(str(resources.files("mss_cli")))
    for folder in (package / "shipped", package.parent / "weights"):
        if (folder / name).is_file():
            return folder / name
    return package.parent / "weights" / name


def checksum(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_id(path: str | Path) -> str:
    return checksum(path)[:12]


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors header's metadata, read without loading tensors (cheap, torch-free)."""
    path = Path(path)
    if not path.is_file():
        raise MssError(f"{path}: weights file not found")
    try:
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if size <= 0 or size > 100_000_000:
                raise ValueError("bad header size")
            header = json.loads(fh.read(size))
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        meta = header.get("__metadata__") or {}
        if not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
            raise ValueError("its metadata is not a map of strings")
        return dict(meta)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MssError(f"{path}: not a valid safetensors weights file ({exc})") from None
    except OSError as exc:  # a device or /proc file that is_file() but cannot be read
        raise MssError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def save_model(model, path: str | Path, half: bool = True, extra: dict | None = None) -> Path:
    """Write a model atomically; fp16 halves the file and costs nothing measurable in quality.

    A tensor with values beyond fp16's range (65,504) stays float32: a batch norm's running variance
    after a strongly scaled layer can reach 1e7, and as fp16 infinity it silences its channels.
    """
    import torch

    fp16_max = torch.finfo(torch.float16).max
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        to_half = half and tensor.is_floating_point() and (tensor.numel() == 0 or tensor.abs().max() <= fp16_max)
        tensors[name] = tensor.half() if to_half else tensor
    meta = {"config": json.dumps(model.config.to_dict()), "format": "mss-model-1"}
    meta.update({k: json.dumps(v) for k, v in (extra or {}).items()})
    return write_safetensors(tensors, path, meta)


def write_safetensors(tensors: dict, path: str | Path, metadata: dict[str, str]) -> Path:
    """Tensors and metadata as a safetensors file, written atomically (``files.write_atomically``);
    a file system that refuses it (full, read-only, a name too long) is an ``MssError``."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    try:
        return write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    except (OSError, SafetensorError) as exc:
        raise MssError(f"{path}: cannot write it ({getattr(exc, 'strerror', None) or exc})") from None


def load_model(path: str | Path | None = None, device: str = "cpu", fuse: bool = True):
    """Build the model described by a weights file and load its tensors (float32, eval mode).

    ``fuse`` folds batch norms into the convolutions for inference; training needs them kept."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mss_cli.model import ConditionedUNet, ModelConfig, fuse_for_inference

    path = Path(path) if path else shipped_weights()
    meta = read_metadata(path)
    if "config" not in meta:
        raise MssError(f"{path}: weights file has no mss model config")
    try:
        config = json.loads(meta["config"])
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
        model = ConditionedUNet(ModelConfig.from_dict(config))
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RuntimeError) as exc:
        raise MssError(f"{path}: weights file has a malformed model config ({exc})") from None
    needed = sum(t.numel() * 4 for t in model.state_dict().values())  # float32, the largest we write
    if path.stat().st_size > needed + HEADER_SLACK:  # load_file reads every tensor in the file
        raise MssError(f"{path}: weights file is far larger ({path.stat().st_size:,} bytes) than its model needs")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise MssError(f"{path}: corrupt weights file ({exc})") from None
    if not all(bool(v.isfinite().all()) for v in state.values() if v.is_floating_point()):
        raise MssError(f"{path}: corrupt weights file (non-finite values)")
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise MssError(f"{path}: weights do not match the model config ({str(exc).splitlines()[0]})") from None
    if fuse:
        fuse_for_inference(model)
    model.model_id = model_id(path)
    model.weights_path = str(path)
    return model.to(torch.device(device)).eval()
