"""What a run separates: its targets (one stem each), what each stem is called, and the residual.

A stem is named after what it is, as demucs and spleeter name theirs: the name given, else the
profile's name, the class, or the common stem of the example clips' file names (``guitar_1.wav``,
``guitar_2.wav`` -> ``guitar``); ``target`` only when nothing names it. The residual (the mixture
minus every target) is ``no_<name>`` beside one target and ``other`` beside several. Torch-free,
so a batch is planned (and ``--skip-existing`` decided) before any model loads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from mss_cli.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from mss_cli.conditioning import Conditioning, Partner
    from mss_cli.model import ConditionedUNet

STEM_NAME = re.compile(r"^[\w.-]{1,100}$")
FALLBACK = "target"
OTHER = "other"
# A clip's file stem without a trailing take number: "guitar_1", "guitar-02", "Guitar 3" -> "guitar".
TAKE_NUMBER = re.compile(r"[\s_.-]*\d+$")


@dataclass
class Target:
    """One stem a run separates: its name, the model and conditioning that separate it, and
    optionally a partner (the class-conditioned baseline and a class vector) averaged in."""

    name: str
    model: ConditionedUNet
    cond: Conditioning
    partner: Partner | None = None


@dataclass(frozen=True)
class TargetSpec:
    """What one target is made from, before any model loads: example clips (files or arrays), a
    profile, or a class of the class-conditioned model; ``with_class`` averages a clip or profile
    target with that model's separation of the class; ``suppress=False`` keeps the negatives'
    steering but not their suppression passes; ``adapt`` tunes the vector on mixtures of the clips
    (``mss_cli.adapt``); ``nmf`` joins the mask of NMF bases learned from the clips to the
    network's: True with more of NMF's, False never, None by default (``mss_cli.nmf.nmf_join``)."""

    name: str | None = None
    like: tuple[str | os.PathLike | np.ndarray, ...] = ()
    not_: tuple[str | os.PathLike | np.ndarray, ...] = ()
    profile: str | os.PathLike | None = None
    class_name: str | None = None
    with_class: str | None = None
    suppress: bool = True
    adapt: bool = False
    nmf: bool | None = None

    def __post_init__(self) -> None:
        for what in ("like", "not_"):
            clips = getattr(self, what)
            if isinstance(clips, (str, os.PathLike)):  # one clip given bare: never its characters
                object.__setattr__(self, what, (clips,))
            elif type(clips).__name__ == "ndarray":
                raise TypeError(f"{what}: a list of clips; one array clip goes in a list ([clip])")
            else:
                object.__setattr__(self, what, tuple(clips))
        sources = sum((bool(self.like), self.profile is not None, self.class_name is not None))
        if sources != 1:
            raise UsageError("a target is made from exactly one of: like (example clips), profile, class_name")
        if self.not_ and not self.like:
            raise UsageError("not_ (clips of what not to keep) goes with like clips: a profile holds its own")
        if self.adapt and not self.not_:
            raise UsageError("adapting a target (adapt / --adapt) needs its like clips and not_ clips")
        if self.nmf and not self.not_:
            raise UsageError(
                "NMF mixing (nmf / --nmf) needs like clips and not_ clips: its unwanted bases come from them"
            )
        if self.with_class and self.class_name is not None:
            raise UsageError("with_class averages a like or profile target with a class: give like or profile")
        if self.name is not None:
            check_name(self.name)

    def resolved_name(self, trained: Sequence[str] = ()) -> str:
        """The stem's name: the one given, the profile's, the class (as ``trained`` names it), the
        clips' shared file name, or ``target``."""
        if self.name is not None:
            return self.name
        if self.profile is not None:
            stem = Path(self.profile).name.removesuffix(".safetensors")
            return stem if STEM_NAME.match(stem) else FALLBACK
        if self.class_name is not None:
            from mss_cli.classes import resolve_class

            return resolve_class(self.class_name, trained) if trained else self.class_name
        files = [c for c in self.like if isinstance(c, (str, os.PathLike))]
        return (name_from_clips(files) if len(files) == len(self.like) else None) or FALLBACK


def specs_from_options(
    like: list[str],
    not_: list[str],
    grouped: list[str],
    profiles: list[str],
    classes: list[str],
    with_class: str | None,
    name: str | None,
    suppress: bool,
    adapt: bool = False,
    nmf: bool | None = None,
) -> list[TargetSpec]:
    """The run's targets from its options, checked before anything loads: --like (one target),
    --target NAME=CLIPS, --profile and --class (each repeatable); --not goes with every clip target."""
    from mss_cli.inputs import expand_examples
    from mss_cli.profiles import existing_profile

    negatives = tuple(expand_examples(not_, "--not")) if not_ else ()
    clip_sets: dict[str | None, list[str]] = {None: like} if like else {}
    for item in grouped:
        key, sep, clip = item.partition("=")
        if not sep or not key or not clip:
            raise UsageError(f"--target {item}: expected NAME=CLIP (e.g. guitar=clips/guitar_*.wav)")
        clip_sets.setdefault(key, []).append(clip)
    specs = [
        TargetSpec(
            key,
            tuple(expand_examples(clips, "--target" if key else "--like")),
            negatives,
            suppress=suppress,
            adapt=adapt,
            nmf=nmf,
        )
        for key, clips in clip_sets.items()
    ]
    for value in profiles:
        try:
            specs.append(TargetSpec(profile=existing_profile(value), nmf=False if nmf is False else None))
        except UsageError as exc:
            raise UsageError(f"--profile {value}: {exc}") from None
    specs += [TargetSpec(class_name=c) for c in classes]
    if not specs:
        raise UsageError("no targets: give --like CLIP..., --target NAME=CLIP..., --profile NAME or --class CLASS")
    if not_ and not clip_sets:
        raise UsageError("--not goes with --like or --target clips (a profile holds its own negatives)")
    if (adapt or nmf) and not clip_sets:
        flag = "--adapt" if adapt else "--nmf"
        raise UsageError(
            f"{flag} goes with --like or --target clips (a profile made with mss embed {flag} holds its own)"
        )
    if (name or with_class) and len(specs) > 1:
        raise UsageError("--name and --with-class apply to a single target: with several, use --target NAME=CLIP")
    if with_class and specs[0].class_name is not None:
        raise UsageError("--with-class averages a --like or --profile target with a class: give one of those")
    if name or with_class:
        specs[0] = replace(specs[0], name=name, with_class=with_class)
    return specs


def check_name(name: str, what: str = "name") -> str:
    """A stem name is a file name component: up to 100 letters, digits, '_', '-' and '.'."""
    if not STEM_NAME.match(name) or name in (".", ".."):
        raise UsageError(f"{what} {name[:40]!r}: up to 100 letters, digits, '_', '-' and '.'")
    return name


def name_from_clips(clips: Sequence[str | os.PathLike]) -> str | None:
    """The instrument the clips' file names share, or None: each name's stem without its take
    number, then their common prefix (trimmed of separators), if it is at least 2 characters."""
    bases = [TAKE_NUMBER.sub("", Path(c).stem) for c in clips]
    if not bases:
        return None
    common = os.path.commonprefix(bases).rstrip(" _.-")
    common = re.sub(r"\s+", "_", common)
    return common if len(common) >= 2 and STEM_NAME.match(common) else None


def residual_name(names: Sequence[str]) -> str:
    """The residual's name: ``no_<name>`` beside one target, ``other`` beside several."""
    return f"no_{names[0]}" if len(names) == 1 else OTHER


def stem_names(names: Sequence[str]) -> list[str]:
    """Every stem a run writes, the targets' and the residual, checked to be distinct."""
    everything = [*names, residual_name(names)]
    seen: set[str] = set()
    for name in everything:
        if name in seen:
            raise UsageError(f"two stems are named {name!r}: give each target its own name")
        seen.add(name)
    return everything
