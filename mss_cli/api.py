"""``Separator``: the one object the CLI and the batch runner are built on, and Python's way in.

    from mss_cli import Separator
    separator = Separator()
    separator.add(like=["guitar_1.wav", "guitar_2.wav"], not_=["vocals.wav"])
    stems = separator.separate(audio, 44100)  # {"guitar": ..., "no_guitar": ...}

Targets are added one by one (clips, a profile or a class each); ``separate`` and
``separate_file`` then split a track into every target's stem and the residual in one pass:
the track is decoded once, each model loaded once, and the STFT shared.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mss_cli.classes import trained_classes_of
from mss_cli.errors import MssError, UsageError
from mss_cli.formats import FORMATS
from mss_cli.separate import SeparationOptions, Written, separate_array, separate_file
from mss_cli.targets import Target, TargetSpec, check_name, stem_names

if TYPE_CHECKING:
    from mss_cli.conditioning import Clip
    from mss_cli.model import ConditionedUNet


def open_model(path: str | Path | None, device: str = "cpu") -> ConditionedUNet:
    """A weights file (the shipped few-shot model when None) on ``device``; a missing or bad file is
    a ``UsageError`` (it is a bad argument, not a failed input)."""
    from mss_cli.weights import load_model

    try:
        return load_model(path, device)
    except MssError as exc:
        raise UsageError(str(exc)) from None


def set_threads(threads: int | None) -> None:
    """torch's CPU threads for this process (None: leave them as they are)."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r}: a whole number from 1")
    import torch

    torch.set_num_threads(threads)


class Separator:
    """Separates tracks into named stems, one per target, plus the residual.

    ``weights``: the few-shot model (the shipped one when None); ``baseline``: the class-conditioned
    model that class targets use (the shipped one when None). Each is loaded once, when a target
    first needs it. ``device``: auto, cpu, cuda, cuda:N or mps. ``threads``: torch's CPU threads
    (None: as they are). The other arguments are ``SeparationOptions``'.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        device: str = "auto",
        precision: str = "auto",
        *,
        baseline: str | Path | None = None,
        threads: int | None = None,
        chunk_seconds: float = 10.0,
        overlap: float = 0.15,
        batch_size: int = 1,
        shifts: int = 1,
    ) -> None:
        from mss_cli.device import pick_device

        self.options = SeparationOptions(  # validates every argument of its own, precision included
            chunk_seconds=chunk_seconds, overlap=overlap, batch_size=batch_size, precision=precision, shifts=shifts
        )
        set_threads(threads)
        self.device = pick_device(device)
        self.weights, self.baseline = weights, baseline
        self.targets: list[Target] = []
        self._models: dict[str, ConditionedUNet] = {}

    # --- models, loaded when first needed ------------------------------------------------------

    def _model(self, role: str, path: str | Path | None) -> ConditionedUNet:
        if role not in self._models:
            from mss_cli.weights import BASELINE_WEIGHTS, shipped_weights

            default = None if role == "fewshot" else shipped_weights(BASELINE_WEIGHTS)
            self._models[role] = open_model(path or default, self.device)
        return self._models[role]

    @property
    def model(self) -> ConditionedUNet:
        """The few-shot model (clip and profile targets)."""
        return self._model("fewshot", self.weights)

    @property
    def class_model(self) -> ConditionedUNet:
        """The class-conditioned model (class targets, and ``with_class``)."""
        return self._model("classcond", self.baseline)

    # --- targets --------------------------------------------------------------------------------

    def add(
        self,
        name: str | None = None,
        *,
        like: Sequence[Clip] | Clip = (),
        not_: Sequence[Clip] | Clip = (),
        profile: str | os.PathLike | None = None,
        class_name: str | None = None,
        with_class: str | None = None,
        suppress: bool = True,
        adapt: bool = False,
        nmf: bool | None = None,
        sample_rate: int | None = None,
    ) -> str:
        """Add a target from example clips (``like``, with optional ``not_`` clips of what not to
        keep; files, or arrays at ``sample_rate``), a ``profile`` (a name or a path) or a
        ``class_name``; returns its stem's name (``name``, or one ``TargetSpec`` derives).
        ``adapt``: tune the clips' vector on mixtures of them (``mss_cli.adapt``; a few seconds).
        ``nmf``: how the mask of NMF bases learned from the ``like`` and ``not_`` clips joins the
        network's (``mss_cli.nmf.nmf_join``): None (the default) half where the clips sound alike
        to the encoder and a little elsewhere, True more of it, False none; without ``not_``
        clips none. NMF makes a run about 2.5 times as long (``--no-nmf`` for speed)."""
        spec = TargetSpec(name, like, not_, profile, class_name, with_class, suppress, adapt, nmf)
        return self.add_spec(spec, sample_rate=sample_rate)

    def add_spec(self, spec: TargetSpec, sample_rate: int | None = None) -> str:
        """``add`` for a ``TargetSpec`` already made (the CLI plans its runs from these)."""
        from dataclasses import replace

        from mss_cli.conditioning import class_condition, class_partner, condition, load_profile
        from mss_cli.nmf import clip_bases, nmf_join
        from mss_cli.profiles import profile_path

        trained = trained_classes_of(self.baseline) if spec.class_name is not None else ()
        name = check_name(spec.resolved_name(trained))
        stem_names([*(t.name for t in self.targets), name])
        partner = None
        if spec.class_name is not None:
            model = self.class_model
            cond = class_condition(model, spec.class_name)
        else:
            model = self.model
            if spec.profile is not None:
                cond = load_profile(profile_path(spec.profile), model)
                if spec.nmf is False:  # --no-nmf: a profile's stored bases stay unused
                    cond = replace(cond, bases=None)
            else:
                cond = condition(model, spec.like, spec.not_, sample_rate)
                join = nmf_join(spec.nmf, cond.likeness)
                if spec.adapt or join is not None:  # both work on the clips' pieces: decoded once
                    from mss_cli.adapt import adapt, pieces

                    targets, others = pieces(model, spec.like, sample_rate), pieces(model, spec.not_, sample_rate)
                    if spec.adapt:
                        cond = adapt(model, cond, targets, others)
                    if join is not None:
                        cond = replace(cond, bases=clip_bases(model, targets, others, *join))
            if spec.with_class:
                partner = class_partner(model, self.class_model, spec.with_class)
        if not spec.suppress:
            cond = replace(cond, unwanted=None)
        self.targets.append(Target(name, model, cond, partner))
        return name

    @property
    def stems(self) -> list[str]:
        """The names of the stems a separation returns: every target's, then the residual's."""
        return stem_names([t.name for t in self.targets])

    def _check_targets(self) -> None:
        if not self.targets:
            raise UsageError("no targets: add one first (Separator.add)")

    def describe(self) -> str:
        """What each target is made from, for the run's first status line."""
        parts = []
        for t in self.targets:
            source = (
                t.cond.positives[0].removeprefix("class:") + " (class)"
                if t.cond.positives and t.cond.positives[0].startswith("class:")
                else f"{len(t.cond.positives)} example(s)"
                + (f", {len(t.cond.negatives)} negative(s)" if t.cond.negatives else "")
                + (" (suppressed)" if t.cond.unwanted is not None else "")
            )
            partner = ", averaged with the class-conditioned model" if t.partner is not None else ""
            partner += f", adapted ({t.cond.adapted_steps} steps)" if t.cond.adapted_steps else ""
            if t.cond.bases is not None:
                of = " of the log-odds" if t.cond.bases.odds else ""
                partner += f", NMF joined in ({t.cond.bases.mixed_in:.0%}{of})"
            parts.append(f"{t.name}: {source}{partner}")
        return "; ".join(parts)

    # --- separation ----------------------------------------------------------------------------

    def separate(self, audio: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """Samples (frames,) or (frames, channels) at ``sample_rate`` -> {stem name: samples of the
        same shape}; the stems and the residual sum to the input."""
        self._check_targets()
        return separate_array(self.targets, audio, sample_rate, self.options)

    def separate_file(
        self,
        source: str | Path,
        outputs: Mapping[str, str | Path] | str | Path,
        fmt: str = "wav",
        bit_depth: str | None = None,
        mp3_bitrate: int | None = None,
        overwrite: bool = False,
        label: str | None = None,
        on_chunk: Callable[[], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> list[Written]:
        """Separate an audio file (any format soundfile or ffmpeg reads). ``outputs``: a folder,
        where each stem goes as ``NAME.EXT``, or {stem name: path ("-": stdout)} for some stems."""
        from dataclasses import replace

        self._check_targets()
        options = replace(self.options, fmt=fmt, bit_depth=bit_depth, mp3_bitrate=mp3_bitrate, overwrite=overwrite)
        if not isinstance(outputs, Mapping):
            outputs = {name: Path(outputs) / f"{name}.{FORMATS[fmt].extension}" for name in self.stems}
        return separate_file(self.targets, source, outputs, options, label, on_chunk, on_start)


def model_details(weights: str | Path | None = None, baseline: str | Path | None = None) -> dict:
    """What ``mss info`` prints: version, device, the weights (path, checksum, configuration,
    training) and the class names ``--class`` takes, with their synonyms."""
    import json

    import torch

    from mss_cli import __version__
    from mss_cli.classes import synonyms_for
    from mss_cli.device import pick_device
    from mss_cli.profiles import profiles_dir
    from mss_cli.weights import checksum, load_model, read_metadata, shipped_weights

    path = Path(weights) if weights else shipped_weights()
    try:
        meta = read_metadata(path)
        model = load_model(path, fuse=False)  # the trained parameters, as the model card counts them
    except MssError as exc:
        raise UsageError(str(exc)) from None
    classes = trained_classes_of(baseline or (path if model.config.kind == "classcond" else None))
    return {
        "version": __version__,
        "torch": torch.__version__,
        "device": pick_device("auto"),
        "cuda_devices": torch.cuda.device_count(),
        "weights": str(path),
        "sha256": checksum(path),
        "model_id": model.model_id,
        "kind": model.config.kind,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": {k: v for k, v in model.config.to_dict().items() if k != "class_names"},
        "training": {k: json.loads(v) for k, v in meta.items() if k in ("steps", "train_hours", "batch", "seed")},
        "classes": classes,
        "class_synonyms": synonyms_for(classes),
        "profiles": str(profiles_dir()),
    }
