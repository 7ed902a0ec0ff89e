"""The ``mss-research`` command: build the training data, train, and run the paper's evaluation.

Research code, kept apart from the product (``mss_cli``), which it imports and never the
reverse. It needs the ``[train]`` extra (music21, FluidSynth, the scoring of ``[eval]``); a missing
one is a one-line error naming it. Errors and exit codes are ``mss``'s.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
import typing
from pathlib import Path

import typer

from mss_cli.errors import UsageError
from mss_cli.extras import require
from mss_cli.files import refuse_to_replace
from mss_cli.runner import HELP_OPTIONS, recorded_command, run_app, say
from mss_research.config import TrainConfig

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


def _numbers(kind: object) -> type | None:
    """The element type of a list of numbers (given as one comma-separated option), else None."""
    is_list = typing.get_origin(kind) is list and typing.get_args(kind)[0] is not str
    return typing.get_args(kind)[0] if is_list else None


def _flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def config_options(config: type) -> tuple[list[inspect.Parameter], dict[str, object]]:
    """One Typer option per field of the dataclass ``config``, from its metadata (``train.opt``):
    the parameters and their annotations. A list of numbers is one comma-separated value; a list
    of strings a repeatable option; a field without a default a required option."""
    hints = typing.get_type_hints(config)
    params, annotations = [], {}
    for f in dataclasses.fields(config):
        meta, kind = f.metadata, hints[f.name]
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else ...
        )
        if _numbers(kind):
            kind, default = str, ",".join(map(str, default))
        option = typer.Option(default, _flag(f), help=meta.get("help"), min=meta.get("min"), max=meta.get("max"))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind))
        annotations[f.name] = kind
    return params, annotations


def config_from_options(config: type, values: dict):
    """The dataclass ``config`` from its generated options' values (comma-separated numbers parsed)."""
    hints = typing.get_type_hints(config)
    fields = {f.name: f for f in dataclasses.fields(config)}
    settings = {}
    for name, value in values.items():
        if number := _numbers(hints[name]):
            try:
                value = [number(v) for v in str(value).split(",")]
            except ValueError:
                what = "whole numbers" if number is int else "numbers"
                raise UsageError(f"{_flag(fields[name])} {value!r}: comma-separated {what}") from None
        settings[name] = value
    return config(**settings)


def train(
    export_to: Path | None = typer.Option(None, "--export", help="After training, write shippable fp16 weights here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --export file."),
    **settings,
) -> None:
    """Train the few-shot model or the class-conditioned baseline (works under torchrun for DDP)."""
    from mss_cli.device import check_precision
    from mss_research.train import export
    from mss_research.train import train as run_training

    require("matplotlib", "train")  # the training curve
    cfg = config_from_options(TrainConfig, settings)
    check_precision(cfg.precision)
    if export_to and not overwrite:  # before hours of training, not after
        refuse_to_replace(export_to, "weights file", usage=True)
    checkpoint = run_training(cfg)
    if export_to:
        export(checkpoint, export_to)
        say(f"mss-research: weights written to {export_to}")


def _train_command() -> None:
    """Register ``train`` with its own options and one option per ``TrainConfig`` field."""
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in list(inspect.signature(train).parameters.values())[:2]
    ]
    params, annotations = config_options(TrainConfig)
    train.__signature__ = inspect.Signature([*params, *own])
    train.__annotations__ = {**annotations, "export_to": Path | None, "overwrite": bool, "return": None}
    app.command()(train)


_train_command()


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
    from mss_cli.api import open_model, set_threads
    from mss_cli.report import check_outputs
    from mss_cli.weights import BASELINE_WEIGHTS, shipped_weights
    from mss_research import paper_eval, report

    require("fast_bss_eval", "eval")
    check_outputs(out, overwrite)  # these two fail before the slow part
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
