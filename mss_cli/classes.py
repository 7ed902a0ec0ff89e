"""The instrument classes users name (``--class``), with their synonyms. Torch-free.

``classes.json`` lists them in a fixed order: a class's position is its id in the class-conditioned
model, and classes are only ever appended. How the research code renders each class lives beside
it (``mss_research/data/taxonomy.json``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from mss_cli.errors import MssError, UsageError


@cache
def catalogue() -> dict:
    """The parsed ``classes.json``: version, classes (name -> family, split, since), synonyms."""
    return json.loads(resources.files("mss_cli").joinpath("classes.json").read_text())


def seen_classes() -> list[str]:
    """The classes training may target, in id order."""
    return [name for name, spec in catalogue()["classes"].items() if spec["split"] == "seen"]


def trained_classes(class_names: Sequence[str]) -> list[str]:
    """The classes a class-conditioned model with this class table has learned vectors for.

    Its table has a row for every class of its class list, but the held-out ("unseen") classes'
    rows were never touched by training: they are random, so using one would be a silent guess."""
    return [c for c in seen_classes() if c in class_names]


def _key(name: str) -> str:
    return "_".join(name.strip().lower().replace("-", " ").split())


def resolve_class(name: str, trained: Sequence[str]) -> str:
    """``name`` as one of ``trained``, ignoring case and '-' or ' ' for '_' (``Electric Guitar``), or
    through a synonym (``rhodes``); a ``UsageError`` that asks which class where a synonym names
    several (``guitar``), or that suggests the nearest class."""
    by_key = {c.lower(): c for c in trained}
    key = _key(name)
    if key in by_key:
        return by_key[key]
    meant = [c for c in catalogue()["synonyms"].get(key, []) if c in trained]
    if len(meant) == 1:
        return meant[0]
    if meant:
        raise UsageError(f"class {name!r} could be {', '.join(meant[:-1])} or {meant[-1]}: which one?")
    close = difflib.get_close_matches(key, list(by_key), n=1, cutoff=0.75)
    hint = f"did you mean {by_key[close[0]]}? " if close else ""
    raise UsageError(f"class {name!r}: not a class this model was trained on ({hint}one of: {', '.join(trained)})")


def synonyms_for(trained: Sequence[str]) -> dict[str, list[str]]:
    """Each synonym and the trained classes it may mean (for ``mss info``)."""
    out = {}
    for word, classes in catalogue()["synonyms"].items():
        meant = [c for c in classes if c in trained]
        if meant:
            out[word] = meant
    return out


def trained_classes_of(baseline: str | Path | None) -> list[str]:
    """The classes the class-conditioned model at ``baseline`` (the shipped one when None) was
    trained on, read from its file's metadata without torch."""
    import json

    from mss_cli.weights import BASELINE_WEIGHTS, read_metadata, shipped_weights

    path = Path(baseline) if baseline else shipped_weights(BASELINE_WEIGHTS)
    try:
        config = json.loads(read_metadata(path).get("config", "{}"))
    except (MssError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    if not isinstance(config, dict) or config.get("kind") != "classcond":
        raise UsageError(f"{path}: a class needs a class-conditioned model (mss-classcond.safetensors), not this one")
    return trained_classes(config.get("class_names", []))
