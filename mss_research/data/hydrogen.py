"""Real drum samples from Hydrogen drum kits (Debian ``hydrogen-drumkits``) as a drum 'soundfont'.

A kit is a folder with ``drumkit.xml`` (instruments, velocity layers, sample files). Instruments are
mapped to General MIDI drum notes by name, so the same drum parts that FluidSynth plays can be
played on recorded kits.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import soundfile as sf

from mss_research.data.scores import Note

PREFIX = "hydrogen:"
# GM note -> name patterns (all words must appear in the lower-cased instrument name), best first.
GM_NAMES: dict[int, list[tuple[str, ...]]] = {
    36: [("kick",), ("bassdrum",), ("bass", "drum"), ("bd",)],
    37: [("stick",), ("rim",)],
    38: [("snare",), ("sd",)],
    39: [("clap",)],
    42: [("closed", "h"), ("hihat",), ("hh",), ("hat",)],
    44: [("pedal",), ("closed", "h")],
    46: [("open", "h"), ("hihat",), ("hh",)],
    49: [("crash",)],
    51: [("ride",), ("crash",)],
    50: [("tom", "hi"), ("tom",)],
    48: [("tom", "hi"), ("tom",)],
    47: [("tom", "mid"), ("tom",)],
    45: [("tom", "mid"), ("tom",)],
    43: [("tom", "low"), ("floor",), ("tom",)],
    41: [("tom", "low"), ("floor",), ("tom",)],
}
Layer = tuple[float, float, np.ndarray]


def _tag(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> str | None:
    return next((c.text for c in element if _tag(c) == name), None)


def map_notes(names: list[str]) -> dict[int, str]:
    """GM drum note -> the kit's instrument name that plays it (first matching pattern wins)."""
    mapping: dict[int, str] = {}
    for note, patterns in GM_NAMES.items():
        for words in patterns:
            match = next((n for n in names if all(w in n for w in words)), None)
            if match:
                mapping[note] = match
                break
    return mapping


def instrument_names(folder: Path) -> list[str]:
    tree = ET.parse(folder / "drumkit.xml")
    return [(_child(e, "name") or "").lower() for e in tree.iter() if _tag(e) == "instrument"]


def available_kits(root: str | Path) -> list[str]:
    """Usable kits (a kick and a snare at least), sorted so renders stay deterministic, as
    'hydrogen:<path>' preset names. Effect kits and claps-only kits are left out."""
    root = Path(root)
    kits = sorted(p.parent for p in root.glob("*/drumkit.xml")) if root.is_dir() else []
    return [PREFIX + str(k) for k in kits if {36, 38} <= set(map_notes(instrument_names(k)))]


class HydrogenKit:
    def __init__(self, folder: str | Path, sample_rate: int) -> None:
        folder = Path(folder)
        tree = ET.parse(folder / "drumkit.xml")
        instruments: dict[str, list[Layer]] = {}
        for inst in (e for e in tree.iter() if _tag(e) == "instrument"):
            name = (_child(inst, "name") or "").lower()
            layers: list[Layer] = []
            # Kits in the old format name one sample on the instrument itself instead of layers.
            for layer in [e for e in inst.iter() if _tag(e) == "layer"] or [inst]:
                filename = _child(layer, "filename")
                if not filename or not (folder / filename).is_file():
                    continue
                audio, rate = sf.read(folder / filename, dtype="float32", always_2d=True)
                if rate != sample_rate:
                    import soxr

                    audio = soxr.resample(audio, rate, sample_rate)
                stereo = np.repeat(audio, 2, axis=1) if audio.shape[1] == 1 else audio[:, :2]
                layers.append((float(_child(layer, "min") or 0), float(_child(layer, "max") or 1), stereo))
            if layers and name not in instruments:
                instruments[name] = layers
        self.notes = {note: instruments[name] for note, name in map_notes(list(instruments)).items()}

    def render(self, notes: list[Note], sample_rate: int, tail: float) -> np.ndarray:
        """Sum the velocity layer of each hit at its onset; unmapped notes are left out."""
        hits = [n for n in notes if n.pitch in self.notes]
        end = max((n.start for n in hits), default=0.0) + tail
        longest = max((len(l[2]) for n in hits for l in self.notes[n.pitch]), default=0)
        out = np.zeros((int(end * sample_rate) + longest, 2), np.float32)
        for n in hits:
            velocity = n.velocity / 127
            layers = self.notes[n.pitch]
            sample = next((s for lo, hi, s in layers if lo <= velocity <= hi), layers[-1][2])
            start = int(n.start * sample_rate)
            out[start : start + len(sample)] += sample * velocity
        return out[: int(end * sample_rate)]
