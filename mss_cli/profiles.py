"""Where profiles live: a bare NAME is a file in the user data folder, anything else a path."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mss_cli.errors import UsageError

PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def profiles_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("mss", appauthor=False)) / "profiles"


def profile_path(value: str | Path) -> Path:
    """A bare NAME lives in the user data folder; anything with a slash or suffix is a path."""
    value = str(value)
    if "/" in value or value.endswith(".safetensors"):
        return Path(value)
    if not PROFILE_NAME.match(value):
        raise UsageError(f"profile name {value!r}: use letters, digits, '_', '-' and '.'")
    return profiles_dir() / f"{value}.safetensors"


def existing_profile(value: str | Path) -> Path:
    path = profile_path(value)
    if not path.is_file():
        raise UsageError(f"{path}: profile not found")
    return path


def profile_row(path: Path) -> dict:
    """What ``mss profiles`` says of one profile (a corrupt one is a ``UsageError``)."""
    from mss_cli.conditioning import profile_adapted_steps, profile_metadata, profile_nmf

    meta = profile_metadata(path)
    nmf = profile_nmf(path, meta)
    return {
        "name": path.stem,
        "path": str(path),
        "model_id": meta["model_id"],
        "created": meta.get("created", ""),
        "positives": json.loads(meta.get("positives", "[]")),
        "negatives": json.loads(meta.get("negatives", "[]")),
        "adapted_steps": profile_adapted_steps(meta),
        # NMF's share of the joined mask and how it joins, as ``mss separate --json`` says them
        # (None: the network's alone)
        "nmf": None if nmf is None else 1.0 - nmf[0],
        "nmf_join": None if nmf is None else nmf[1],
    }


def stored_profiles() -> list[Path]:
    folder = profiles_dir()
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def remove_profiles(values: list[str]) -> None:
    """Remove profiles: all named ones must exist and be profiles, or nothing is removed."""
    from mss_cli.conditioning import profile_metadata

    paths = [existing_profile(v) for v in values]
    for path in paths:
        profile_metadata(path)  # a path given is removed only when it is a profile, never any file
    for path in paths:
        path.unlink()
