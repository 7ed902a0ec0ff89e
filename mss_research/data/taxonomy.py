"""The instrument taxonomy as the data builder sees it: the product's classes (``mss_cli/classes.json``:
names, ids, families, the seen/unseen split) with how each is rendered (``taxonomy.json`` here:
General MIDI programs, ranges, roles) and the soundfonts.

The class list is versioned: later versions only append classes, so ids never move, and an older
version (the classes it had) still renders the dataset it rendered then: the arrangement generator
draws from the classes it is given, so one more class changes every work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from mss_cli.classes import catalogue


@dataclass(frozen=True)
class InstrumentClass:
    """One instrument class: what it is called, how to render it and whether training may target it."""

    name: str
    family: str
    programs: tuple[int, ...]
    low: int
    high: int
    roles: tuple[str, ...]
    seen: bool

    @property
    def is_drums(self) -> bool:
        return self.name == "drums"

    @property
    def recorded_only(self) -> bool:
        """A class no soundfont renders (vocals): its stems come only from recordings."""
        return not self.programs and not self.is_drums


@dataclass(frozen=True)
class Taxonomy:
    classes: tuple[InstrumentClass, ...]
    train_soundfonts: tuple[str, ...]
    drumkit_soundfonts: tuple[str, ...]
    hydrogen_drumkits: str  # folder of Hydrogen kits (real recorded drums), used when installed
    reserved_soundfonts: tuple[str, ...]
    redistributable_soundfonts: tuple[str, ...]
    gm_drum_kits: tuple[int, ...]
    version: int

    def index(self, name: str) -> int:
        """Class id used by the class-conditioned baseline (stable: file order)."""
        for i, c in enumerate(self.classes):
            if c.name == name:
                return i
        raise KeyError(f"unknown instrument class {name!r}")

    def get(self, name: str) -> InstrumentClass:
        return self.classes[self.index(name)]

    def with_role(self, role: str) -> list[InstrumentClass]:
        return [c for c in self.classes if role in c.roles]

    @property
    def seen(self) -> list[str]:
        return [c.name for c in self.classes if c.seen]

    @property
    def unseen(self) -> list[str]:
        return [c.name for c in self.classes if not c.seen]


@lru_cache(maxsize=1)
def _raw() -> dict:
    return json.loads(resources.files("mss_research.data").joinpath("taxonomy.json").read_text())


@cache
def load_taxonomy(version: int | None = None) -> Taxonomy:
    """The classes of taxonomy ``version`` (the latest when None); an unknown version is a ValueError."""
    raw, listed = _raw(), catalogue()
    latest = int(listed["version"])
    version = latest if version is None else version
    if not 1 <= version <= latest:
        raise ValueError(f"taxonomy version {version} does not exist (1 to {latest})")
    classes = tuple(
        InstrumentClass(
            name=name,
            family=spec["family"],
            programs=tuple(raw["classes"][name]["programs"]),
            low=raw["classes"][name]["range"][0],
            high=raw["classes"][name]["range"][1],
            roles=tuple(raw["classes"][name]["roles"]),
            seen=spec["split"] == "seen",
        )
        for name, spec in listed["classes"].items()
        if spec.get("since", 1) <= version
    )
    sf = raw["soundfonts"]
    return Taxonomy(
        classes=classes,
        train_soundfonts=tuple(sf["train"]),
        drumkit_soundfonts=tuple(sf["drumkits"]),
        hydrogen_drumkits=sf["hydrogen_drumkits"],
        reserved_soundfonts=tuple(sf["reserved"]),
        redistributable_soundfonts=tuple(sf["redistributable"]),
        gm_drum_kits=tuple(raw["gm_drum_kits"]),
        version=version,
    )
