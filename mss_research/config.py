"""The training settings (torch-free, so ``mss-research --help`` starts fast)."""

from __future__ import annotations

from dataclasses import dataclass, field


def opt(help: str, flag: str | None = None, low: float | None = None, high: float | None = None) -> dict:
    """A ``TrainConfig`` field's command-line option: its help, flag (default: the field's name)
    and bounds."""
    return {"help": help, "flag": flag, "min": low, "max": high}


@dataclass
class TrainConfig:
    """Every training setting, in one place: ``mss-research train`` makes one option of each field
    (``--lr-final`` for ``lr_final``; the help and bounds are the field's metadata)."""

    data: str = field(metadata=opt("Dataset folder (mss-research data build)."))
    run: str = field(metadata=opt("Run folder: checkpoints, log.csv, curve.png (resumed if present).", "--run-dir"))
    kind: str = field(default="fewshot", metadata=opt("fewshot or classcond (the baseline)."))
    channels: list[int] = field(
        default_factory=lambda: [8, 16, 32, 64, 128, 256], metadata=opt("U-Net widths, comma-separated.")
    )
    film: str = field(default="encoder", metadata=opt("FiLM placement: encoder (every encoder block) or bottleneck."))
    dropout: float = field(
        default=0.3, metadata=opt("Dropout in the first three decoder blocks while training.", low=0.0, high=0.9)
    )
    steps: int = field(default=100_000, metadata=opt("Train up to this step.", low=1))
    minutes: float = field(default=0.0, metadata=opt("Stop after this many minutes (0: no limit).", low=0.0))
    batch: int = field(default=8, metadata=opt("Episodes per step.", low=1))
    lr: float = field(default=1e-3, metadata=opt("Peak learning rate (Adam)."))
    lr_final: float = field(
        default=0.0, metadata=opt("Decay the learning rate (cosine) from --lr to this at --steps (0: constant).", low=0)
    )
    schedule_start: int | None = field(
        default=None,
        metadata=opt(
            "Begin the --lr-final decay at this step (default: where the run or --init began); Adam's state is kept."
        ),
    )
    segment_frames: int = field(default=256, metadata=opt("STFT frames of each training mixture.", low=16))
    example_seconds: list[float] = field(
        default_factory=lambda: [1.0, 2.0, 3.0], metadata=opt("Example clip lengths drawn from, comma-separated.")
    )
    val_episodes: int = field(default=48, metadata=opt("Fixed validation episodes per group.", low=1))
    val_every: int = field(default=200, metadata=opt("Validate every this many steps.", low=1))
    checkpoint_every: int = field(default=50, metadata=opt("Checkpoint every this many steps.", low=1))
    seed: int = field(default=0, metadata=opt("Random seed (episodes, initialisation)."))
    threads: int = field(default=0, metadata=opt("Torch CPU threads (0: torch's default).", low=0))
    workers: int = field(
        default=0, metadata=opt("Processes drawing training episodes (0: the training process).", low=0)
    )
    precision: str = field(
        default="auto", metadata=opt("auto (bf16 autocast on CUDA and CPUs with native bf16), fp32 or bf16.")
    )
    init: str = field(default="", metadata=opt("Start from a weights file (steps and hours go on)."))
    teacher: str = field(
        default="", metadata=opt("Distil a few-shot model from this class-conditioned one (its U-Net is the start).")
    )
    distill_weight: float = field(default=1.0, metadata=opt("Weight of the distillation term.", low=0.0))
    contrast_weight: float = field(
        default=0.0, metadata=opt("Weight of the example-contrast term (few-shot; see TrainStep).", low=0.0)
    )
    hide_unseen: bool = field(
        default=False, metadata=opt("Leave the unseen classes out of training mixtures too (not only as targets).")
    )
    real: list[str] = field(
        default_factory=list, metadata=opt("A recorded-stem dataset (mss-research data real) to train on; repeatable.")
    )
    real_share: float = field(
        default=0.5, metadata=opt("How often an episode's target comes from the --real datasets.", low=0.0, high=1.0)
    )
    instruments: list[str] = field(
        default_factory=list, metadata=opt("A real-instrument dataset to validate on, never trained on; repeatable.")
    )
    production: float = field(
        default=0.0,
        metadata=opt("How often a rendered stem or clip gets random production effects.", low=0.0, high=1.0),
    )
    balance: float = field(
        default=0.0,
        metadata=opt(
            "Even out the target classes of each dataset: 0 draws every stem alike, 1 every class alike.",
            low=0.0,
            high=1.0,
        ),
    )
