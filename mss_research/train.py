"""Training: episodic few-shot training (or the class-conditioned baseline), resumable, DDP-ready.

Runs as one process, or under ``torchrun`` (gloo on CPU, NCCL on GPU): each rank draws its own
episodes from a rank-specific seed. Checkpoints (model + optimiser, safetensors) are written to the
run folder every ``checkpoint_every`` steps and when the time budget ends; a rerun continues from
the last one. Logs go to ``log.csv`` and a ``curve.png`` learning curve.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mss_cli.audio import SAMPLE_RATE
from mss_cli.device import autocast_dtype
from mss_cli.errors import MssError, UsageError
from mss_cli.files import write_atomically
from mss_cli.metrics import negative_sdr, sdr
from mss_cli.model import ConditionedUNet, ModelConfig
from mss_research.config import TrainConfig
from mss_research.data.episodes import Episode, EpisodeSampler, collate
from mss_research.data.instruments import INSTRUMENT_TARGETS
from mss_research.data.realstems import REAL_TARGETS
from mss_research.data.render import dataset_taxonomy_version
from mss_research.data.taxonomy import load_taxonomy


class TrainStep(nn.Module):
    """Loss of one batch in a single forward(), so DDP sees every parameter used.

    With ``teacher_films`` (the FiLM parameters a class-conditioned teacher gives each class), a
    few-shot model is also pulled towards what the teacher would do with the target's class: the
    mean squared difference of the two FiLM parameter vectors, times ``distill_weight``, joins the
    -SDR loss. It teaches the example encoder to tell classes apart (what a class vector gets for
    free) while the -SDR term keeps what examples add beyond the class: timbre and negatives.

    With ``contrast_weight`` the example encoder learns the same thing with no fixed class points
    (which a distilled encoder collapsed onto, losing unseen classes): ``example_contrast`` asks each
    episode's clean target, embedded by the same encoder, to be nearer its own class's example clips
    in the batch than the other classes'.
    """

    def __init__(
        self,
        model: ConditionedUNet,
        teacher_films: torch.Tensor | None = None,
        distill_weight: float = 1.0,
        contrast_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.model = model
        self.distill_weight = distill_weight
        self.contrast_weight = contrast_weight
        self.register_buffer("teacher_films", teacher_films, persistent=False)

    def embed_examples(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-clip embeddings of the positives (B, K, E) and negatives (B, J, E), or None without any."""
        m = self.model
        b, k, n = batch["positives"].shape
        pos = m.embed_windows(batch["positives"].reshape(b * k, n)).reshape(b, k, -1)
        neg = None
        if batch["negatives"].shape[1]:
            _, j, n2 = batch["negatives"].shape
            neg = m.embed_windows(batch["negatives"].reshape(b * j, n2)).reshape(b, j, -1)
        return pos, neg

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """{"loss": what to minimise, "sdr": its -SDR part, and each other term this run adds
        ("distill", "contrast"; present only where asked for)}."""
        m = self.model
        terms: dict[str, torch.Tensor] = {}
        if m.config.kind == "classcond":
            cond = m.class_conditioning(batch["class_id"])
        else:
            pos, neg = self.embed_examples(batch)
            cond = m.conditioning(pos, neg, batch["positive_valid"], batch["negative_valid"])
            if self.contrast_weight:
                terms["contrast"] = example_contrast(
                    m.embed_windows(batch["target"]), pos, batch["positive_valid"], batch["class_id"]
                )
        separation = negative_sdr(batch["target"], m(batch["mixture"], cond)).mean()
        if self.teacher_films is not None:
            target = self.teacher_films[batch["class_id"]]
            terms["distill"] = (m.film(cond).float() - target).pow(2).mean()
        weights = {"distill": self.distill_weight, "contrast": self.contrast_weight}
        loss = separation + sum(weights[name] * term for name, term in terms.items())
        return {"loss": loss, "sdr": separation, **terms}


CONTRAST_TEMPERATURE = 0.2


def example_contrast(
    anchors: torch.Tensor, clips: torch.Tensor, valid: torch.Tensor, class_id: torch.Tensor
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) of each target embedding (B, E) against every
    valid positive clip of the batch (B, K, E): the clips of the anchor's class (its own episode's
    and any other episode's with that class) are its positives, all others its negatives. Cosine
    similarity over ``CONTRAST_TEMPERATURE``; classes are only ever compared, never given a point."""
    b, k, _ = clips.shape
    flat = nn.functional.normalize(clips.reshape(b * k, -1).float(), dim=1)
    keep = valid.reshape(-1)
    flat, clip_class = flat[keep], class_id.repeat_interleave(k)[keep]
    logits = nn.functional.normalize(anchors.float(), dim=1) @ flat.T / CONTRAST_TEMPERATURE  # (B, clips)
    same = (class_id[:, None] == clip_class[None, :]).float()
    log_prob = logits.log_softmax(dim=1)
    return (-(log_prob * same).sum(dim=1) / same.sum(dim=1)).mean()


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def save_checkpoint(
    path: Path,
    model: ConditionedUNet,
    opt: torch.optim.Optimizer,
    step: int,
    hours: float,
    cfg: TrainConfig,
    schedule_start: int = 0,
) -> None:
    """Model and Adam state as safetensors (no pickle), written atomically, with the step the
    learning-rate schedule began at (a resumed run must decay along the same curve)."""
    from mss_cli.weights import write_safetensors

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    state = opt.state_dict()
    for idx, s in state["state"].items():
        for key, value in s.items():
            tensors[f"optim.{idx}.{key}"] = (
                torch.as_tensor(value).detach().cpu().reshape(-1)
                if key == "step"
                else value.detach().cpu().contiguous()
            )
    meta = {
        "step": str(step),
        "hours": str(hours),
        "schedule_start": str(schedule_start),
        "model_config": json.dumps(model.config.to_dict()),
        "train_config": json.dumps(asdict(cfg)),
    }
    write_safetensors(tensors, path, meta)


def architecture(config: ModelConfig) -> tuple:
    """What must match for one model's weights to load into another."""
    return config.kind, list(config.channels), config.film


def describe(config: ModelConfig) -> str:
    """The architecture in the words of mss-research train's flags, for error messages."""
    return f"a {config.kind} model with U-Net widths {','.join(map(str, config.channels))} (FiLM: {config.film})"


def load_checkpoint(path: Path, model: ConditionedUNet, opt: torch.optim.Optimizer | None) -> tuple[int, float, int]:
    """Restore model (and optimiser) state; returns the step, the hours and the schedule's start step."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    theirs = ModelConfig.from_dict(json.loads(meta["model_config"]))
    if architecture(theirs) != architecture(model.config):
        raise UsageError(
            f"{path} holds {describe(theirs)}; these flags ask for {describe(model.config)}: "
            "resume with the run's own --kind, --channels and --film, or use another --run-dir"
        )
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if opt is not None:
        state = opt.state_dict()
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, idx, key = name.split(".", 2)
                state["state"].setdefault(int(idx), {})[key] = value.reshape(()) if key == "step" else value
        opt.load_state_dict(state)
    return int(meta["step"]), float(meta["hours"]), int(meta.get("schedule_start", meta["step"]))


def model_config(cfg: TrainConfig) -> ModelConfig:
    """The classes are those of the dataset's taxonomy version: a baseline trained on version-1 data
    must not offer `--class` for classes added later, which it never heard."""
    taxonomy = load_taxonomy(dataset_taxonomy_version(cfg.data))
    return ModelConfig(
        kind=cfg.kind,
        channels=cfg.channels,
        film=cfg.film,
        dropout=cfg.dropout,
        num_classes=len(taxonomy.classes),
        class_names=[c.name for c in taxonomy.classes],
    )


def given_weights(path: str) -> ConditionedUNet:
    """A weights file named on the command line (--init, --teacher), unfused for training; a
    missing or bad file is a usage error (exit 2), as for every other command."""
    from mss_cli.weights import load_model

    try:
        return load_model(path, fuse=False)
    except MssError as exc:
        raise UsageError(str(exc)) from None


# log.csv: losses every 10 steps; validation columns only on validation steps (empty otherwise).
LOG_COLUMNS = [
    "step",
    "loss",
    "hours",
    "val_sdr",
    "val_sdri",
    "val_sdri_neg",
    "distill",
    "val_sdri_unseen",
    "contrast",
    "lr",
    "val_sdri_real",
    "val_sdri_real_neg",
    "val_sdri_instruments",
    "val_sdri_instruments_neg",
]

# Loss terms besides -SDR that a run may add, logged in their own column when enabled.
AUX_TERMS = {"distill": "distillation (FiLM MSE)", "contrast": "example contrast"}

SHARED_WITH_TEACHER = ("input_mean", "input_scale", "unet.", "film.")


def adopt_teacher(student: ConditionedUNet, teacher: ConditionedUNet) -> None:
    """Start a few-shot model from a class-conditioned one's separator (input normalisation, U-Net,
    FiLM generator): only the example encoder must then learn to produce what the class table gave."""
    if student.config.channels != teacher.config.channels or student.config.film != teacher.config.film:
        raise UsageError("the teacher's U-Net differs from the student's (channels or FiLM placement)")
    shared = {k: v for k, v in teacher.state_dict().items() if k.startswith(SHARED_WITH_TEACHER)}
    student.load_state_dict(shared, strict=False)


def teacher_films(teacher: ConditionedUNet, class_names: list[str]) -> torch.Tensor:
    """The FiLM parameters (classes, 2 x sum of FiLM'd channels) the teacher gives each of the run's
    classes, in the run's class order (its targets' class ids index these rows). A teacher trained
    on an earlier taxonomy version has no vector for the classes added since: refused."""
    if teacher.config.kind != "classcond":
        raise UsageError("the teacher must be a class-conditioned model (mss-research train --kind classcond)")
    missing = [c for c in class_names if c not in teacher.config.class_names]
    if missing:
        raise UsageError(
            f"the teacher has no class vector for {len(missing)} of this dataset's classes "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): it was trained on "
            "an earlier taxonomy version's data; distil on data of its version"
        )
    rows = torch.tensor([teacher.config.class_names.index(c) for c in class_names])
    with torch.no_grad():
        return teacher.film(teacher.class_table.weight[rows]).float()


def start_from(model: ConditionedUNet, source: ConditionedUNet) -> None:
    """--init: a run's fresh model takes another file's weights. They must be the same kind of model
    with the same U-Net; a class-conditioned model's class vectors are copied by class name, so a
    baseline trained on an earlier taxonomy version can go on with the classes added since (their
    rows start from scratch)."""
    mine, theirs = model.config, source.config
    if architecture(theirs) != architecture(mine):
        raise UsageError(
            f"--init: the weights are {describe(theirs)}; this run trains {describe(mine)}: "
            "see --kind, --channels, --film"
        )
    state = source.state_dict()
    if mine.kind == "classcond":
        table = model.class_table.weight.detach().clone()
        for row, name in enumerate(theirs.class_names):
            if name in mine.class_names:
                table[mine.class_names.index(name)] = state["class_table.weight"][row]
        state["class_table.weight"] = table
    model.load_state_dict(state)


def validate(model: ConditionedUNet, episodes: list[Episode], use_negatives: bool) -> tuple[float, float]:
    """Median SDR and SDR improvement over the mixture on fixed validation episodes."""
    from mss_research.paper_eval import classcond, fewshot

    model.eval()
    sdrs, gains = [], []
    for e in episodes:
        if model.config.kind == "classcond":
            est = classcond(model, e)
        else:
            est = fewshot(model, e, len(e.positives), len(e.negatives) if use_negatives else 0)
        sdrs.append(sdr(e.target, est))
        gains.append(sdrs[-1] - sdr(e.target, e.mixture))
    model.train()
    return float(np.median(sdrs)), float(np.median(gains))


def unseen_validation(cfg: TrainConfig, segment: int) -> list[Episode]:
    """Validation episodes whose targets are classes no model trains on: where a few-shot model's
    generalisation shows. Seen-class validation alone once hid a 1.2-dB loss there (distillation
    onto the seen classes; `experiments/distillation.md`). Empty for a dataset without unseen-class stems."""
    try:
        sampler = EpisodeSampler(cfg.data, "val", segment, 3 * SAMPLE_RATE, targets="unseen", seed=4321)
    except ValueError:
        return []
    return [sampler.sample(positives=5, negatives=0) for _ in range(cfg.val_episodes)]


def real_validation(cfg: TrainConfig, segment: int) -> list[Episode]:
    """Validation episodes of held-out real songs (the ``real`` split of the first --real dataset
    that has one), examples from the other held-out songs: the group model choices are made on."""
    for folder in cfg.real:
        try:
            sampler = EpisodeSampler(folder, "real", segment, 3 * SAMPLE_RATE, targets=REAL_TARGETS, seed=5678)
        except ValueError:
            continue
        return [sampler.sample(positives=5, negatives=5) for _ in range(cfg.val_episodes)]
    return []


def instrument_validation(cfg: TrainConfig, segment: int) -> list[Episode]:
    """Validation episodes of the real-instrument datasets (``--instruments``: URMP's recordings,
    held-out libraries over held-out songs), drawn with another seed than the evaluation's."""
    if not cfg.instruments:
        return []
    try:
        sampler = EpisodeSampler(
            cfg.instruments, "real", segment, 3 * SAMPLE_RATE, targets=INSTRUMENT_TARGETS, seed=8765
        )
    except ValueError:
        return []
    return [sampler.sample(positives=5, negatives=5) for _ in range(cfg.val_episodes)]


def training_sources(cfg: TrainConfig) -> tuple[list[str], list[float]]:
    """The dataset folders training draws from and each one's share of episode targets."""
    if not cfg.real:
        return [cfg.data], [1.0]
    if not 0.0 <= cfg.real_share <= 1.0:
        raise UsageError(f"--real-share {cfg.real_share}: between 0 and 1")
    return [cfg.data, *cfg.real], [1.0 - cfg.real_share] + [cfg.real_share / len(cfg.real)] * len(cfg.real)


def resume_log(log_path: Path, step: int) -> dict[str, str]:
    """Trim the log to the checkpoint's step and return its last row (empty if none).

    A run stopped between checkpoints (killed, or its machine gone) logged steps that its
    resumption trains and logs again; each step should appear once in the log and its curve. The
    last row's smoothed losses seed the resumed averages, so the curve does not restart from a
    single batch's loss at every resumption.
    """
    if not log_path.exists():
        return {}
    with log_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    kept = [r for r in rows if int(r["step"]) <= step]
    if len(kept) < len(rows):

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, reader.fieldnames or LOG_COLUMNS)
                writer.writeheader()
                writer.writerows(kept)

        write_atomically(log_path, write)
    return kept[-1] if kept else {}


# Validation groups a run has only with the data for them: log column -> curve label.
OPTIONAL_VALIDATION = {
    "val_sdri_unseen": "unseen classes, 5 positives",
    "val_sdri_real": "real recordings, 5 positives",
    "val_sdri_real_neg": "real, 5 positives + 5 negatives",
    "val_sdri_instruments": "real instruments, 5 positives",
    "val_sdri_instruments_neg": "real instruments, 5 positives + 5 negatives",
}


def plot_curve(log_path: Path, png_path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = list(csv.DictReader(log_path.open()))
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    val = [r for r in rows if r["val_sdri"]]
    # A run without validation (--val-every past its end) gets the loss panel alone, not an empty second one.
    panels = 2 if val else 1
    fig, ax = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    ax = ax[0]
    ax[0].plot(steps, [float(r["loss"]) for r in rows])
    ax[0].set(xlabel="step", ylabel="-SDR loss (train, smoothed, dB)")
    extra = [(name, [r for r in rows if r.get(name)]) for name in AUX_TERMS]
    extra = [(name, got) for name, got in extra if got]
    if extra:  # a run with --teacher or --contrast-weight: its other loss terms on a second axis
        twin = ax[0].twinx()
        for (name, got), color in zip(extra, ("tab:orange", "tab:green")):
            twin.plot([int(r["step"]) for r in got], [float(r[name]) for r in got], color=color, label=AUX_TERMS[name])
        twin.set_ylabel("other loss terms (smoothed)")
        twin.legend(loc="upper right", fontsize="small")
    if val:
        neg = [r for r in val if r["val_sdri_neg"]]
        ax[1].plot(
            [int(r["step"]) for r in val],
            [float(r["val_sdri"]) for r in val],
            label="seen classes, 5 positives" if neg else "class-conditioned",
        )
        if neg:
            ax[1].plot(
                [int(r["step"]) for r in neg],
                [float(r["val_sdri_neg"]) for r in neg],
                label="seen, 5 positives + 5 negatives",
            )
        for column, label in OPTIONAL_VALIDATION.items():
            got = [r for r in val if r.get(column)]
            if got:
                ax[1].plot([int(r["step"]) for r in got], [float(r[column]) for r in got], label=label)
        ax[1].set(xlabel="step", ylabel="median SDRi (dB, val)")
        ax[1].legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)


def train(cfg: TrainConfig) -> Path:
    """Train until ``steps`` or the time budget; returns the checkpoint path."""
    rank, world = _distributed()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    try:
        model = ConditionedUNet(model_config(cfg))
    except ValueError as exc:  # an unknown --kind or --film, or impossible --channels
        raise UsageError(str(exc)) from None
    ckpt = run / "last.safetensors"
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    step, hours, schedule_start = 0, 0.0, 0
    teacher, distill_targets = None, None
    if cfg.teacher:
        if cfg.kind != "fewshot":
            raise UsageError("--teacher trains a few-shot model (--kind fewshot)")
        teacher = given_weights(cfg.teacher)
        distill_targets = teacher_films(teacher, model.config.class_names)
    if cfg.contrast_weight and cfg.kind != "fewshot":
        raise UsageError("--contrast-weight trains a few-shot model's example encoder (--kind fewshot)")
    log_path = run / "log.csv"
    last_row: dict[str, str] = {}
    if ckpt.exists():
        step, hours, schedule_start = load_checkpoint(ckpt, model, opt)
        last_row = resume_log(log_path, step) if rank == 0 else {}  # rank 0 alone writes the log
    else:
        if cfg.init:
            from mss_cli.weights import read_metadata

            start_from(model, given_weights(cfg.init))
            # The count goes on (fresh optimiser state): --steps is the cumulative target, and the
            # exported file's steps and hours say how much training the weights have had in all.
            meta = read_metadata(cfg.init)
            step, hours = int(json.loads(meta.get("steps", "0"))), float(json.loads(meta.get("train_hours", "0")))
        schedule_start = step
        if teacher is not None:
            adopt_teacher(model, teacher)
    if cfg.schedule_start is not None:
        if not 0 <= cfg.schedule_start < cfg.steps:
            raise UsageError(f"--schedule-start {cfg.schedule_start}: a step before --steps {cfg.steps}")
        schedule_start = cfg.schedule_start
    model.to(device)
    for s in opt.state.values():
        for k, v in s.items():
            if isinstance(v, torch.Tensor) and k != "step":
                s[k] = v.to(device)
    dtype = autocast_dtype(str(device), cfg.precision)
    stepper: nn.Module = TrainStep(model, distill_targets, cfg.distill_weight, cfg.contrast_weight)
    stepper.to(device)
    if world > 1:
        stepper = nn.parallel.DistributedDataParallel(
            stepper, device_ids=[device.index] if device.type == "cuda" else None
        )
    segment = (cfg.segment_frames - 1) * model.config.hop
    batches = iter(
        torch.utils.data.DataLoader(
            EpisodeBatches(cfg, segment, model.config.sample_rate, seed=cfg.seed * 1000 + rank + step),
            batch_size=None,
            num_workers=cfg.workers,
            pin_memory=device.type == "cuda",
            prefetch_factor=4 if cfg.workers else None,
        )
    )
    val_sampler = EpisodeSampler(cfg.data, "val", segment, 3 * SAMPLE_RATE, seed=1234)
    val_set = [val_sampler.sample(positives=5, negatives=5) for _ in range(cfg.val_episodes)] if rank == 0 else []
    val_unseen = unseen_validation(cfg, segment) if rank == 0 and cfg.kind == "fewshot" else []
    val_real = real_validation(cfg, segment) if rank == 0 and cfg.kind == "fewshot" else []
    val_instruments = instrument_validation(cfg, segment) if rank == 0 and cfg.kind == "fewshot" else []
    new_log = not log_path.exists()
    log = log_path.open("a", newline="")
    writer = csv.DictWriter(log, LOG_COLUMNS)
    if new_log:
        writer.writeheader()
    started = time.time()
    session_start = hours
    smooth = float(last_row["loss"]) if last_row.get("loss") else None
    # the other loss terms this run adds (TrainStep returns only those)
    smooth_aux = {name: float(last_row[name]) for name in AUX_TERMS if last_row.get(name)}
    model.train()
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step, schedule_start)
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            losses = stepper(batch)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        # The logged loss is the -SDR part alone, so runs with and without a teacher compare.
        smooth = ema(smooth, losses["sdr"].item())
        for name in AUX_TERMS:
            if name in losses:
                smooth_aux[name] = ema(smooth_aux.get(name), losses[name].item())
        hours = session_start + (time.time() - started) / 3600
        out_of_time = cfg.minutes and (time.time() - started) > cfg.minutes * 60
        if rank == 0:
            row = dict.fromkeys(LOG_COLUMNS, "")
            row.update(step=step, loss=f"{smooth:.5f}", hours=f"{hours:.4f}", lr=f"{opt.param_groups[0]['lr']:.3g}")
            row.update({name: f"{value:.5f}" for name, value in smooth_aux.items()})
            if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
                v_sdr, v_sdri = validate(model, val_set, use_negatives=False)
                row.update(val_sdr=f"{v_sdr:.3f}", val_sdri=f"{v_sdri:.3f}")
                report = f"step {step} loss {smooth:.4f} val SDR {v_sdr:.2f} SDRi {v_sdri:.2f}"
                report += "".join(f" {name} {value:.4f}" for name, value in smooth_aux.items())
                if model.config.kind == "fewshot":  # the class-conditioned baseline takes no negatives
                    _, v_sdri_neg = validate(model, val_set, use_negatives=True)
                    row["val_sdri_neg"] = f"{v_sdri_neg:.3f}"
                    report += f" (+neg {v_sdri_neg:.2f})"
                if val_unseen:
                    _, v_unseen = validate(model, val_unseen, use_negatives=False)
                    row["val_sdri_unseen"] = f"{v_unseen:.3f}"
                    report += f" unseen classes {v_unseen:.2f}"
                if val_real:
                    _, v_real = validate(model, val_real, use_negatives=False)
                    _, v_real_neg = validate(model, val_real, use_negatives=True)
                    row.update(val_sdri_real=f"{v_real:.3f}", val_sdri_real_neg=f"{v_real_neg:.3f}")
                    report += f" real {v_real:.2f} (+neg {v_real_neg:.2f})"
                if val_instruments:
                    _, v_inst = validate(model, val_instruments, use_negatives=False)
                    _, v_inst_neg = validate(model, val_instruments, use_negatives=True)
                    row.update(val_sdri_instruments=f"{v_inst:.3f}", val_sdri_instruments_neg=f"{v_inst_neg:.3f}")
                    report += f" instruments {v_inst:.2f} (+neg {v_inst_neg:.2f})"
                print(report, flush=True)
            if step % 10 == 0 or row["val_sdr"]:
                writer.writerow(row)
                log.flush()
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or out_of_time:
                save_checkpoint(ckpt, model, opt, step, hours, cfg, schedule_start)
                plot_curve(log_path, run / "curve.png")
        if out_of_time:
            break
    log.close()
    if world > 1:
        torch.distributed.destroy_process_group()
    return ckpt


class EpisodeBatches(torch.utils.data.IterableDataset):
    """Endless training batches (each with one example-clip length drawn from ``example_seconds``).

    Under a DataLoader with workers, each worker draws from its own sampler, seeded by its worker
    id: one process's numpy episode assembly (~10 ms an episode) would otherwise leave a GPU idle.
    With no workers it is the single in-process sampler the CPU runs here have always used.
    """

    def __init__(self, cfg: TrainConfig, segment: int, sample_rate: int, seed: int) -> None:
        super().__init__()
        self.cfg, self.segment, self.sample_rate, self.seed = cfg, segment, sample_rate, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        folders, shares = training_sources(self.cfg)
        sampler = EpisodeSampler(
            folders,
            "train",
            self.segment,
            3 * SAMPLE_RATE,
            seed=self.seed + 1_000_003 * worker,
            hide_unseen=self.cfg.hide_unseen,
            shares=shares,
            production=self.cfg.production,
            balance=self.cfg.balance,
        )
        while True:
            sampler.example = int(sampler.rng.choice(self.cfg.example_seconds) * self.sample_rate)
            yield collate([sampler.sample() for _ in range(self.cfg.batch)])


def learning_rate(cfg: TrainConfig, step: int, start: int) -> float:
    """Constant ``lr``, or with ``lr_final`` a cosine from ``lr`` at ``start`` (where the schedule
    began: a fresh run's first step, or the step --init weights had) down to ``lr_final`` at
    ``cfg.steps``. Runs at a constant rate plateau (experiments/example-contrast.md)."""
    if not cfg.lr_final:
        return cfg.lr
    done = min(1.0, max(0.0, (step - start) / max(1, cfg.steps - start)))
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1.0 + math.cos(math.pi * done))


def ema(average: float | None, value: float) -> float:
    """The smoothed training curve: an exponential moving average over about 50 steps."""
    return value if average is None else 0.98 * average + 0.02 * value


def export(checkpoint: str | Path, out: str | Path, half: bool = True) -> Path:
    """Turn a training checkpoint into a shippable weights file (fp16, with provenance metadata)."""
    from safetensors import safe_open

    from mss_cli.weights import save_model

    with safe_open(str(checkpoint), "pt") as fh:
        meta = fh.metadata()
    model = ConditionedUNet(ModelConfig.from_dict(json.loads(meta["model_config"])))
    step, hours, _ = load_checkpoint(Path(checkpoint), model, None)
    train_cfg = json.loads(meta["train_config"])
    return save_model(
        model,
        out,
        half=half,
        extra={"steps": step, "train_hours": round(hours, 3), "batch": train_cfg["batch"], "seed": train_cfg["seed"]},
    )
