"""The ``mss-research`` command: build the training data, train, and run the paper's evaluation.

Research code, kept apart from the product (``mss_cli``), which it imports and never the
reverse. It needs the ``[train]`` extra (music21, FluidSynth, the scoring of ``[eval]``); a missing
one is a one-line error naming it. Errors and exit codes are ``mss``'s.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from mss_cli.errors import UsageError
from mss_cli.extras import require
from mss_cli.files import refuse_to_replace
from mss_cli.runner import HELP_OPTIONS, recorded_command, run_app, say

app = typer.Typer(
    name="mss-research",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="mss's research tools: training data, training, the paper's evaluation.",
    context_settings=HELP_OPTIONS,
)
data_app = typer.Typer(no_args_is_help=True, help="Training data: render multitrack stems with FluidSynth.")
app.add_typer(data_app, name="data")


@data_app.command("build")
def data_build(
    out: Path | None = typer.Option(None, "--out", help="Dataset folder (default: the user cache folder)."),
    generated: int = typer.Option(320, "--generated", min=0, help="Generated pop/rock/jazz/electronic arrangements."),
    corpus: int = typer.Option(0, "--corpus", min=0, help="music21 corpus works (Bach chorales first)."),
    timbre: int = typer.Option(
        30, "--timbre", min=0, help="Validation works re-rendered with the reserved soundfonts."
    ),
    seed: int = typer.Option(0, "--seed"),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.5),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1),
    taxonomy_version: int | None = typer.Option(
        None,
        "--taxonomy-version",
        help="Render with the instrument classes of this taxonomy version (default: the latest); "
        "1 reproduces the dataset the shipped weights were trained on.",
    ),
) -> None:
    """Render (or resume rendering) the synthetic multitrack dataset and print speed figures."""
    from platformdirs import user_cache_dir

    from mss_research.data.render import build

    require("fluidsynth", "train")
    if corpus:
        require("music21", "train")
    folder = out or Path(user_cache_dir("mss", appauthor=False)) / "data"
    print(
        json.dumps(
            build(folder, generated, corpus, seed, val_fraction, timbre, jobs, taxonomy_version=taxonomy_version)
        )
    )


@data_app.command("demo")
def data_demo(
    out: Path = typer.Option(Path("examples"), "--out", help="Folder for demo_mix.flac, reference/ and clips/."),
) -> None:
    """Render the README's demo mix and example clips (redistributable soundfonts, unseen works)."""
    from mss_research.data.demo import render_demo

    require("fluidsynth", "train")
    for path in render_demo(out):
        print(path)


@data_app.command("sampled")
def data_sampled(
    libraries: Path = typer.Argument(
        ..., help="Folder holding the sample libraries of mss_research/data/libraries.json, one folder each."
    ),
    out: Path = typer.Option(..., "--out", help="Dataset folder."),
    works: int = typer.Option(600, "--works", min=1),
    backing: Path | None = typer.Option(
        None,
        "--backing",
        help="A real-stem dataset (mss-research data real): its songs' drums, bass and vocals back the works.",
    ),
    held_out: bool = typer.Option(
        False, "--held-out", help="Evaluation works: the held-out libraries over the backing's held-out songs."
    ),
    seed: int = typer.Option(0, "--seed"),
    val_fraction: float = typer.Option(0.1, "--val-fraction", min=0.0, max=0.5),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1),
) -> None:
    """Render (or resume) works played on recorded-sample instruments, in rooms, over real backings."""
    from mss_research.data.sampled import build_sampled

    require("pysfizz", "train")
    require("pedalboard", "train")
    print(json.dumps(build_sampled(out, libraries, works, seed, backing, held_out, val_fraction, jobs)))


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Dataset folder (mss-research data build)."),
    run: Path = typer.Option(
        ..., "--run-dir", help="Run folder: checkpoints, log.csv, curve.png (resumed if present)."
    ),
    kind: str = typer.Option("fewshot", "--kind", help="fewshot or classcond (the baseline)."),
    steps: int = typer.Option(100_000, "--steps", min=1),
    minutes: float = typer.Option(0.0, "--minutes", min=0.0, help="Stop after this many minutes (0: no limit)."),
    batch: int = typer.Option(8, "--batch", min=1),
    lr: float = typer.Option(1e-3, "--lr"),
    lr_final: float = typer.Option(
        0.0, "--lr-final", min=0.0, help="Decay the learning rate (cosine) from --lr to this at --steps (0: constant)."
    ),
    schedule_start: int | None = typer.Option(
        None,
        "--schedule-start",
        help="Begin the --lr-final decay at this step (default: where the run or --init began), e.g. to decay "
        "a resumed run that trained at a constant rate; Adam's state is kept.",
    ),
    seed: int = typer.Option(0, "--seed"),
    init: str = typer.Option("", "--init", help="Start from a weights file."),
    teacher: str = typer.Option(
        "", "--teacher", help="Distil a few-shot model from this class-conditioned one (its U-Net is the start)."
    ),
    distill_weight: float = typer.Option(
        1.0, "--distill-weight", min=0.0, help="Weight of the distillation term against the -SDR loss."
    ),
    contrast_weight: float = typer.Option(
        0.0,
        "--contrast-weight",
        min=0.0,
        help="Weight of the example-contrast term (few-shot): targets nearer their class's example clips than others'.",
    ),
    export_to: Path | None = typer.Option(None, "--export", help="After training, write shippable fp16 weights here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --export file."),
    val_every: int = typer.Option(200, "--val-every", min=1),
    val_episodes: int = typer.Option(48, "--val-episodes", min=1),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", min=1),
    channels: str | None = typer.Option(None, "--channels", help="U-Net widths, e.g. 8,16,32,64,128,256."),
    dropout: float = typer.Option(
        0.3, "--dropout", min=0.0, max=0.9, help="Dropout in the first three decoder blocks while training."
    ),
    film: str = typer.Option(
        "encoder", "--film", help="FiLM placement: encoder (every encoder block) or bottleneck (the paper's)."
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="auto (bf16 autocast on CUDA and on CPUs with native bf16), fp32 or bf16."
    ),
    hide_unseen: bool = typer.Option(
        False,
        "--hide-unseen",
        help="Leave the unseen classes out of training mixtures too (by default they are interferers, never targets).",
    ),
    real: list[Path] = typer.Option(
        [],
        "--real",
        help="A recorded-stem dataset (mss-research data real) to train on beside --data; repeat for several. "
        "Its held-out songs, if any, are validated on.",
    ),
    real_share: float = typer.Option(
        0.5, "--real-share", min=0.0, max=1.0, help="How often an episode's target comes from the --real datasets."
    ),
    instruments: list[Path] = typer.Option(
        [],
        "--instruments",
        help="A real-instrument dataset to validate on, never trained on (see mss-research eval --instruments); "
        "repeat for several.",
    ),
    production: float = typer.Option(
        0.0,
        "--production",
        min=0.0,
        max=1.0,
        help="How often a rendered stem or example clip goes through random production effects "
        "(EQ, compression, amp distortion, modulation, reverb).",
    ),
    workers: int = typer.Option(
        0,
        "--workers",
        min=0,
        help="Processes drawing training episodes (0: the training process; use several to keep a GPU busy).",
    ),
) -> None:
    """Train the few-shot model or the class-conditioned baseline (works under torchrun for DDP)."""
    from mss_cli.device import check_precision
    from mss_research.train import TrainConfig, export
    from mss_research.train import train as run_training

    require("matplotlib", "train")  # the training curve

    cfg = TrainConfig(
        precision=check_precision(precision),
        data=str(data),
        run=str(run),
        kind=kind,
        steps=steps,
        minutes=minutes,
        batch=batch,
        lr=lr,
        lr_final=lr_final,
        schedule_start=schedule_start,
        seed=seed,
        init=init,
        teacher=teacher,
        distill_weight=distill_weight,
        contrast_weight=contrast_weight,
        val_every=val_every,
        val_episodes=val_episodes,
        checkpoint_every=checkpoint_every,
        workers=workers,
        hide_unseen=hide_unseen,
        real=[str(r) for r in real],
        real_share=real_share,
        instruments=[str(i) for i in instruments],
        production=production,
        film=film,
        dropout=dropout,
    )
    if export_to and not overwrite:  # before hours of training, not after
        refuse_to_replace(export_to, "weights file", usage=True)
    if channels is not None:
        try:
            cfg.channels = [int(c) for c in channels.split(",")]
        except ValueError:
            raise UsageError(
                f"--channels {channels!r}: comma-separated whole numbers, e.g. 8,16,32,64,128,256"
            ) from None
    checkpoint = run_training(cfg)
    if export_to:
        export(checkpoint, export_to)
        say(f"mss: weights written to {export_to}")


@data_app.command("real")
def data_real(
    source: Path = typer.Argument(..., help="Folder of the recordings (searched recursively)."),
    out: Path = typer.Option(..., "--out", help="Dataset folder for the decoded stems."),
    kind: str = typer.Option(
        "musdb",
        "--kind",
        help="What SOURCE holds: musdb (MUSDB18 .stem.mp4 previews), everything-is-free or urmp "
        "(one folder per song, one file per part).",
    ),
    held_out: int = typer.Option(24, "--held-out", min=0, help="Songs kept for evaluation (the 'real' split; musdb)."),
    all_held_out: bool = typer.Option(
        False,
        "--all-held-out",
        help="Every song in the 'real' split, for evaluation only (MUSDB18's test split; URMP: research terms).",
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Decode real multitrack stems into a dataset: MUSDB18 songs split into training and held-out
    evaluation songs; the other sources' songs all for training, or all held out (--all-held-out)."""
    from mss_research.data.realstems import MULTITRACK_SOURCES, import_multitrack, import_musdb

    if kind == "musdb":
        print(json.dumps(import_musdb(source, out, None if all_held_out else held_out, seed)))
    elif kind in MULTITRACK_SOURCES:
        pattern, class_of = MULTITRACK_SOURCES[kind]
        split = "real" if all_held_out else "train"
        print(json.dumps(import_multitrack(source, out, class_of, pattern, kind, split)))
    else:
        raise UsageError(f"--kind {kind}: one of musdb, {', '.join(MULTITRACK_SOURCES)}")


@app.command("eval")
def evaluate_command(
    data: Path = typer.Option(..., "--data", help="A rendered dataset (mss-research data build)."),
    real: Path | None = typer.Option(
        None, "--real", help="A real-stem dataset (mss-research data real): adds the real-recordings group."
    ),
    instruments: list[Path] = typer.Option(
        [],
        "--instruments",
        help="A real-instrument dataset (URMP imported with --all-held-out; mss-research data sampled --held-out): "
        "adds the real-instrument and guitar groups; repeat for several.",
    ),
    out: Path = typer.Option(Path("docs"), "--out", "-o", help="Where evaluation.md, .jsonl and .png go."),
    episodes: int = typer.Option(30, "--episodes", min=1, help="Episodes per group (seen, unseen, unseen timbre)."),
    seed: int = typer.Option(7, "--seed"),
    weights: Path | None = typer.Option(None, "--weights", help="Few-shot model (default: shipped)."),
    baseline: Path | None = typer.Option(
        None, "--baseline", help="Class-conditioned model to compare (default: the shipped one)."
    ),
    threads: int = typer.Option(0, "--threads", min=0, help="Torch CPU threads (0: default)."),
    method: list[str] | None = typer.Option(
        None, "--method", help='Run only this method, e.g. "few-shot, 5 positives" (repeatable; default: all).'
    ),
    group: list[str] | None = typer.Option(
        None, "--group", help='Run only this group, e.g. "real recordings" (repeatable; default: all).'
    ),
    against: Path | None = typer.Option(
        None,
        "--against",
        help="Pair each method with an earlier run's (its evaluation.jsonl or folder; same data and --seed).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """The paper's comparison on the validation works: every method, by group and target class."""
    from mss_cli import report
    from mss_cli.api import open_model, set_threads
    from mss_cli.weights import BASELINE_WEIGHTS, shipped_weights
    from mss_research import paper_eval

    require("fast_bss_eval", "eval")
    report.check_outputs(out, overwrite)  # these two fail before the slow part
    earlier = (str(against), report.load_cases(against)) if against else None
    set_threads(threads or None)
    model = open_model(weights, "cpu")
    base = open_model(baseline or shipped_weights(BASELINE_WEIGHTS), "cpu")
    cases = paper_eval.evaluate(
        data,
        model,
        base,
        episodes,
        seed,
        progress=say,
        methods=method or (),
        real=real,
        groups=group or (),
        instruments=instruments,
    )
    print(
        report.save(cases, out, recorded_command("mss-research"), earlier, paper_eval.COMPARISONS, paper_eval.SETTING)
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``mss-research``."""
    run_app(app, "mss-research", list(sys.argv[1:] if argv is None else argv))
