"""Training episodes: a mixture segment, its target stem, and example clips of what to keep and drop.

Guarantees the sampler keeps (and the tests check): positives come from works other than the
mixture's; negatives are never of the target class (they are clips of other classes present in the
mixture, from other works); unseen classes are never training targets.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

import numpy as np
import torch

from mss_research.data.render import read_manifest
from mss_research.data.taxonomy import load_taxonomy

SILENCE_RMS = 3e-3
SAME_SOURCE = 0.75  # how often example clips come from the target's own dataset folder


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.dot(x, x) / max(1, x.size)))


@dataclass
class Episode:
    mixture: np.ndarray  # (samples,) float32
    target: np.ndarray  # (samples,)
    positives: np.ndarray  # (K, example_samples)
    negatives: np.ndarray  # (M, example_samples)
    target_class: str
    class_id: int
    work: str
    positive_works: list[str]
    negative_classes: list[str]
    mixture_classes: list[str]  # the classes audible in the mixture, the target's included


class EpisodeSampler:
    """Draws episodes from a rendered dataset (memory-mapped int16 stems: no decoding cost)."""

    def __init__(
        self,
        root: str | Path | Sequence[str | Path],
        split: str,
        segment: int,
        example: int,
        max_positives: int = 5,
        max_negatives: int = 5,
        targets: str | tuple[str, ...] = "seen",
        seed: int = 0,
        hide_unseen: bool = False,
        shares: Sequence[float] | None = None,
        production: float = 0.0,
        balance: float = 0.0,
    ) -> None:
        """``root``: one dataset folder, or several (synthetic renders and recorded stems) drawn from
        together: ``shares`` (one per folder, default equal) is how often an episode's target comes
        from each. A mixture is always one work's stems; example clips come from the target's own
        folder with probability ``SAME_SOURCE`` (as a user's clips of a real recording are real), else
        from any folder with that class.

        ``production``: how often a rendered stem or clip goes through a random chain of production
        effects (``production.produce``); recorded stems are produced already.

        ``balance`` evens out the target classes within each folder: a stem is drawn with weight
        ``n ** -balance``, ``n`` its class's stems there, so a class comes up in proportion to
        ``n ** (1 - balance)``. At 0 every stem is alike and the common classes (drums and bass in a
        rendered band) fill most episodes; at 1 every class is alike, the rare ones' few stems
        repeated often.

        ``hide_unseen`` leaves the unseen classes' stems out of the mixtures too, so that training
        never hears them. Otherwise they are interferers: never a target, always to be removed, which
        is what a separator then learns to do with them, whatever its examples ask for (`experiments/gpu-run.md`).

        ``targets``: "seen", "unseen" or "all" of the taxonomy's classes, or the class names
        themselves (real stems: drums, bass, vocals; classes outside the taxonomy get class id -1)."""
        self.roots = [Path(root)] if isinstance(root, (str, Path)) else [Path(r) for r in root]
        self.segment, self.example = segment, example
        self.max_positives, self.max_negatives = max_positives, max_negatives
        self.production = production
        self.taxonomy = load_taxonomy()
        self.rng = random.Random(seed)
        rows = [
            {**r, "root": i}
            for i, folder in enumerate(self.roots)
            for r in read_manifest(folder)
            if r["split"] == split
        ]
        if hide_unseen:
            rows = [r for r in rows if r["class"] not in self.taxonomy.unseen]
        allowed = set(
            self.taxonomy.seen
            if targets == "seen"
            else self.taxonomy.unseen
            if targets == "unseen"
            else [c.name for c in self.taxonomy.classes]
            if targets == "all"
            else targets
        )
        self.works: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            self.works[r["work"]].append(r)
        self.by_class: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            self.by_class[r["class"]].append(r)
        self.targets = [
            (w, r)
            for w, stems in self.works.items()
            for r in stems
            if r["class"] in allowed and self._other_works(r["class"], w)
        ]
        if not self.targets:
            raise ValueError(f"no usable target stems in split {split!r} of {', '.join(map(str, self.roots))}")
        shares = list(shares) if shares is not None else [1.0] * len(self.roots)
        if len(shares) != len(self.roots) or min(shares) < 0:
            raise ValueError("one non-negative share per dataset folder")
        per_root = [[t for t in self.targets if t[1]["root"] == i] for i in range(len(self.roots))]
        if not 0.0 <= balance <= 1.0:
            raise ValueError("balance is between 0 and 1")
        self._target_groups = [
            (group, share, class_weights(group, balance) if balance else None)
            for group, share in zip(per_root, shares)
            if group and share > 0
        ]
        if not self._target_groups:
            raise ValueError("every dataset folder with targets has a share of 0")
        self._cache: dict[tuple[int, str], np.ndarray] = {}

    def class_id(self, name: str) -> int:
        """The taxonomy's id of a class (the class-conditioned model's row), -1 for one it lacks."""
        return self.taxonomy.index(name) if name in {c.name for c in self.taxonomy.classes} else -1

    def _other_works(self, cls: str, work: str) -> list[dict]:
        return [r for r in self.by_class.get(cls, []) if r["work"] != work]

    def _example_rows(self, cls: str, work: str, root: int) -> list[dict]:
        """Stems of ``cls`` from works other than ``work`` to take example clips from: those of the
        same folder (with probability ``SAME_SOURCE``, when it has any) or of every folder."""
        rows = self._other_works(cls, work)
        if len(self.roots) > 1 and self.rng.random() < SAME_SOURCE:  # one folder: no draw (seeds reproduce)
            return [r for r in rows if r["root"] == root] or rows
        return rows

    def _audio(self, row: dict) -> np.ndarray:
        key = (row["root"], row["path"])
        if key not in self._cache:
            self._cache[key] = np.load(self.roots[row["root"]] / row["path"], mmap_mode="r")
        return self._cache[key]

    def _channel(self, audio: np.ndarray, start: int, length: int, channel: int) -> np.ndarray:
        """One channel (0, 1) or the mid (2) of a stem segment, float32, zero-padded to ``length``."""
        seg = audio[start : start + length]
        if channel == 2:
            mono = (seg[:, 0].astype(np.float32) + seg[:, 1]) * np.float32(0.5 / 32768)
        else:
            mono = seg[:, channel].astype(np.float32) * np.float32(1 / 32768)
        return np.pad(mono, (0, length - mono.shape[0]))

    def _produced(self, audio: np.ndarray, row: dict) -> np.ndarray:
        """``audio`` of a stem, through production effects as often as ``production`` asks when the
        stem is rendered (a recorded one has no GM program: -1). No draw at all when production is 0."""
        if self.production and row["program"] >= 0 and self.rng.random() < self.production:
            from mss_research.data.production import produce

            return produce(audio, row["class"], self.rng)
        return audio

    def _active_clip(self, row: dict, length: int, tries: int = 8) -> np.ndarray | None:
        """A non-silent clip of ``length`` samples of a stem, mono (examples are embedded in mono)."""
        audio = self._audio(row)
        for _ in range(tries):
            start = self.rng.randrange(max(1, audio.shape[0] - length))
            clip = self._channel(audio, start, length, 2)
            if rms(clip) > SILENCE_RMS:
                return self._produced(clip, row)
        return None

    def _examples(self, rows: list[dict], count: int) -> tuple[list[np.ndarray], list[str]]:
        clips, works = [], []
        for _ in range(count * 3):
            if len(clips) == count or not rows:
                break
            row = self.rng.choice(rows)
            clip = self._active_clip(row, self.example)
            if clip is not None:
                clips.append(clip)
                works.append(row["work"])
        return clips, works

    def sample(self, positives: int | None = None, negatives: int | None = None) -> Episode:
        rng = self.rng
        while True:
            if len(self._target_groups) == 1:  # one draw, as a one-folder sampler always made
                group, _, weights = self._target_groups[0]
            else:
                group, _, weights = rng.choices(self._target_groups, [g[1] for g in self._target_groups])[0]
            work, target_row = rng.choice(group) if weights is None else rng.choices(group, cum_weights=weights)[0]
            stems = self.works[work]
            length = self._audio(target_row).shape[0]
            start = rng.randrange(max(1, length - self.segment))
            channel = rng.randrange(3)
            target = self._channel(self._audio(target_row), start, self.segment, channel)
            if rms(target) < SILENCE_RMS:
                continue
            target = self._produced(target, target_row)
            others = [r for r in stems if r is not target_row and rng.random() > 0.2]
            if not others:
                continue
            gains = [10 ** (rng.uniform(-3, 3) / 20) for _ in others]
            target = target * 10 ** (rng.uniform(-3, 3) / 20)
            mixture = target.copy()
            present: list[str] = []
            for r, g in zip(others, gains):
                part = self._produced(self._channel(self._audio(r), start, self.segment, channel), r) * g
                mixture += part
                if rms(part) > SILENCE_RMS:
                    present.append(r["class"])
            peak = np.abs(mixture).max()
            scale = rng.uniform(0.2, 1.0) / peak if peak > 0 else 1.0
            k = positives if positives is not None else rng.choice([1, 2, 3, 3, 4, 5, 5, 5][: self.max_positives + 3])
            root = target_row["root"]
            pos_rows = self._example_rows(target_row["class"], work, root)
            pos, pos_works = self._examples(pos_rows, min(k, self.max_positives))
            if not pos:
                continue
            if negatives is not None:
                m = negatives
            else:
                m = 0 if rng.random() < 0.3 else rng.randint(1, self.max_negatives)
            neg_classes = [c for c in present if c != target_row["class"]]
            neg: list[np.ndarray] = []
            used: list[str] = []
            for i in range(m if neg_classes else 0):
                cls = neg_classes[i % len(neg_classes)]
                clip, _ = self._examples(self._example_rows(cls, work, root), 1)
                if clip:
                    neg += clip
                    used.append(cls)
            empty = np.zeros((0, self.example), np.float32)
            return Episode(
                mixture=(mixture * scale).astype(np.float32),
                target=(target * scale).astype(np.float32),
                positives=np.stack(pos),
                negatives=np.stack(neg) if neg else empty,
                target_class=target_row["class"],
                class_id=self.class_id(target_row["class"]),
                work=work,
                positive_works=pos_works,
                negative_classes=used,
                mixture_classes=[target_row["class"], *present],
            )


def class_weights(targets: list[tuple[str, dict]], balance: float) -> list[float]:
    """Cumulative draw weights of ``targets`` (work, stem row) that make each class come up in
    proportion to its stem count to the power ``1 - balance``."""
    counts = Counter(row["class"] for _, row in targets)
    return list(accumulate(counts[row["class"]] ** -balance for _, row in targets))


def collate(episodes: list[Episode]) -> dict[str, torch.Tensor]:
    """Stack episodes, padding example sets to the largest count with a validity mask."""
    k = max(e.positives.shape[0] for e in episodes)
    m = max(e.negatives.shape[0] for e in episodes)
    n = episodes[0].positives.shape[1]

    def pad(sets: list[np.ndarray], count: int) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.zeros(len(sets), count, n)
        valid = torch.zeros(len(sets), count, dtype=torch.bool)
        for i, s in enumerate(sets):
            data[i, : s.shape[0]] = torch.from_numpy(s)
            valid[i, : s.shape[0]] = True
        return data, valid

    pos, pos_valid = pad([e.positives for e in episodes], k)
    neg, neg_valid = pad([e.negatives for e in episodes], m)
    return {
        "mixture": torch.from_numpy(np.stack([e.mixture for e in episodes])),
        "target": torch.from_numpy(np.stack([e.target for e in episodes])),
        "positives": pos,
        "positive_valid": pos_valid,
        "negatives": neg,
        "negative_valid": neg_valid,
        "class_id": torch.tensor([e.class_id for e in episodes]),
    }
