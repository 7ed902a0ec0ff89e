"""The ``mss`` command: a thin Typer layer over the library (nothing here that Python users lack).

Heavy modules (torch, the model) are imported inside commands so ``mss --help`` starts fast.
Errors: every failure is one line on stderr, ``mss: error: ...``; exit 0 all done, 1 some input
failed, 2 usage errors (options, example clips, profiles, weights), 130/143/129 interrupted, 141 the
reader of stdout went away (``| head``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import typer

from mss_cli import __version__, signals, stdio
from mss_cli.errors import MssError, UsageError, one_line
from mss_cli.files import refuse_to_replace

if TYPE_CHECKING:
    from mss_cli.conditioning import Conditioning
    from mss_cli.model import ConditionedUNet
    from mss_cli.separate import Outputs, SeparationOptions

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    name="mss",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain, compact help: one line an option, as a shell tool's
    context_settings=HELP_OPTIONS,
)
SEPARATE_EXAMPLES = """Examples:

\b
  mss separate song.wav --like guitar_*.wav --not vocals.wav
  mss separate album/ --profile guitar -o stems --format flac --json
  mss separate song.wav --class bass --name bass --no-residual
  ffmpeg -i live.mkv -f wav - | mss separate - --like violin.wav -o - | ffplay -

Exit codes: 0 all separated, 1 some inputs failed, 2 usage error, 130/143/129 interrupted,
141 stdout's reader went away.
"""


def print_version(value: bool) -> None:
    """``mss --version``: eager, so it answers before any command is parsed (and imports no torch)."""
    if value:
        print(f"mss {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(
        False, "--version", callback=print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Few-shot music source separation: pull one instrument out of a recording, given a few example clips of it."""


PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EXAMPLE_OPTIONS = ("--like", "--not", "-l", "-n")


class Plan(NamedTuple):
    """One input of a run: the stems to write for it, or why it cannot be separated."""

    source: str
    outputs: Outputs | None
    problem: str | None = None


class Format(str, Enum):
    wav = "wav"
    flac = "flac"
    mp3 = "mp3"
    ogg = "ogg"


class BitDepth(str, Enum):
    b16 = "16"
    b24 = "24"
    b32f = "32f"


def say(message: str) -> None:
    """Status on stderr (stdout carries only results)."""
    print(message, file=sys.stderr, flush=True)


def error(message: str) -> None:
    say(f"mss: error: {one_line(message)}")


def profiles_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("mss", appauthor=False)) / "profiles"


def profile_path(value: str) -> Path:
    """A bare NAME lives in the user data folder; anything with a slash or suffix is a path."""
    if "/" in value or value.endswith(".safetensors"):
        return Path(value)
    if not PROFILE_NAME.match(value):
        raise UsageError(f"profile name {value!r}: use letters, digits, '_', '-' and '.'")
    return profiles_dir() / f"{value}.safetensors"


def load_model_for(weights: Path | None, device: str, threads: int = 0):
    """The weights (the shipped model by default) on ``device``; a bad file is a usage error.
    ``threads``: torch's CPU threads (0: its default)."""
    from mss_cli.device import pick_device
    from mss_cli.weights import load_model

    if threads:
        import torch

        torch.set_num_threads(threads)
    resolved = pick_device(device)
    try:
        return load_model(weights, resolved)
    except MssError as exc:
        raise UsageError(str(exc)) from None


def check_examples(
    like: list[str], not_: list[str], profile: str | None, class_name: str | None = None
) -> tuple[list[str], list[str]]:
    """Validate the example options (before the model loads: usage errors should be instant)."""
    from mss_cli.inputs import expand_examples

    if class_name and not (like or profile):
        if not_:
            raise UsageError("--not needs --like: the class-conditioned model alone takes no example clips")
        return [], []
    if profile and like:
        raise UsageError("give either --like or --profile, not both")
    if profile:
        if not_:
            raise UsageError("--not cannot be combined with --profile (the profile already holds its negatives)")
        if not profile_path(profile).is_file():
            raise UsageError(f"{profile_path(profile)}: profile not found")
        return [], []
    if not like:
        raise UsageError("no examples: give --like FILE... (clips of the instrument to keep) or --profile NAME")
    return expand_examples(like, "--like"), expand_examples(not_, "--not") if not_ else []


def conditioning_for(
    model, positives: list[str], negatives: list[str], profile: str | None, class_name: str | None = None, baseline=None
):
    """The run's conditioning: ``class_name`` alone is the class-conditioned ``model``'s vector; with
    clips or a profile, the few-shot ``model``'s, averaged with ``baseline``'s for ``class_name``."""
    from mss_cli.conditioning import class_condition, condition, load_profile, with_class

    if class_name and baseline is None:
        return class_condition(model, class_name)
    cond = load_profile(profile_path(profile), model) if profile else condition(model, positives, negatives)
    return with_class(model, cond, baseline, class_name) if class_name else cond


@app.command(epilog=SEPARATE_EXAMPLES)
def separate(
    inputs: list[str] = typer.Argument(
        ..., metavar="INPUT...", help="Audio files, folders (searched recursively), globs, or - for stdin."
    ),
    like: list[str] = typer.Option(
        [],
        "--like",
        "-l",
        metavar="CLIP...",
        help="Example clips of the instrument to keep (files or globs; takes every name up to the next option).",
    ),
    not_: list[str] = typer.Option(
        [], "--not", "-n", metavar="CLIP...", help="Example clips of what NOT to keep (optional)."
    ),
    suppress: bool = typer.Option(
        True,
        "--suppress/--no-suppress",
        help="Separate each --not instrument too and take it out of the target (one more model pass per instrument: "
        "similar clips share one; --no-suppress: the negatives only steer the model).",
    ),
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="A saved conditioning (mss embed): a name or a .safetensors path."
    ),
    class_name: str | None = typer.Option(
        None,
        "--class",
        help="An instrument class (bass, piano, ...): alone, the class-conditioned baseline model separates it; "
        "with --like/--profile, its separation is averaged with the few-shot model's (better on its 33 classes).",
    ),
    out: str = typer.Option(
        "separated", "--out", "-o", help="Output folder, or - to write the target as WAV to stdout."
    ),
    filename: str = typer.Option(
        "{track}/{stem}.{ext}", "--filename", help="Output name template: {track} {stem} {ext} {parent}."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Name of the target stem (default: target; the residual becomes no_NAME)."
    ),
    no_residual: bool = typer.Option(False, "--no-residual", help="Do not write the residual (mixture minus target)."),
    fmt: Format = typer.Option(Format.wav, "--format", "-f", help="Output format."),
    bit_depth: BitDepth | None = typer.Option(
        None, "--bit-depth", help="16, 24 or 32f (wav/flac; default: as the input)."
    ),
    mp3_bitrate: int | None = typer.Option(
        None, "--mp3-bitrate", min=32, max=320, help="Constant MP3 bitrate in kbit/s (with --format mp3)."
    ),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps."),
    chunk: float = typer.Option(
        10.0, "--chunk", min=1.0, max=30.0, help="Chunk length in seconds (memory grows with it)."
    ),
    overlap: float = typer.Option(
        0.15, "--overlap", min=0.0, max=0.9, help="Fraction of a chunk shared with the next."
    ),
    batch_size: int = typer.Option(
        1, "--batch-size", min=1, max=256, help="Chunks per forward pass (useful on a GPU)."
    ),
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="auto (bf16 on CUDA and on CPUs with native bf16: AMX, AVX512-BF16; else fp32), fp32 or bf16.",
    ),
    shifts: int = typer.Option(
        1,
        "--shifts",
        min=1,
        max=16,
        help="Average the separator over N time-shifted passes (N times the model's work).",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=64, help="Files processed in parallel."),
    shard_spec: str | None = typer.Option(
        None, "--shard", metavar="I/N", help="Process only the I-th of N slices of the sorted inputs."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose outputs all exist (to resume an interrupted batch)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary on stderr (errors still)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per written file on stdout."),
    weights: Path | None = typer.Option(
        None, "--weights", help="Model file (default: the shipped model; with --class alone, the shipped baseline)."
    ),
    baseline: Path | None = typer.Option(
        None,
        "--baseline",
        help="Class-conditioned model that --class averages in beside --like/--profile (default: the shipped one).",
    ),
) -> None:
    """Separate the instrument shown by --like from each INPUT (and write the rest as the residual)."""
    from mss_cli.inputs import STDIN, Naming, check_template, expand_inputs, parse_shard, shard

    to_stdout = out == "-"
    unreadable: list[str] = []
    files = shard(expand_inputs(inputs, None if to_stdout else Path(out), unreadable), parse_shard(shard_spec))
    for folder in unreadable:  # said even with --quiet: files the user asked for are left out
        say(f"mss: warning: skipped a folder that cannot be read: {one_line(folder)}")
    if to_stdout and len(files) != 1:
        raise UsageError("-o - writes one stream: give exactly one input")
    if to_stdout and fmt != Format.wav:
        raise UsageError("-o - writes WAV only")
    if STDIN in files and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError("- reads audio from stdin, which is a terminal or closed: pipe or redirect a file into it")
    if to_stdout and sys.stdout.isatty():
        raise UsageError("-o - writes WAV data to stdout, which is a terminal: redirect it to a file or a pipe")
    if mp3_bitrate and fmt != Format.mp3:
        raise UsageError("--mp3-bitrate goes with --format mp3")
    if skip_existing and overwrite:
        raise UsageError("--skip-existing and --overwrite contradict each other: choose one")
    check_template(filename)
    from mss_cli.audio import FORMATS, resolve_subtype
    from mss_cli.device import check_precision

    check_precision(precision)

    if bit_depth:  # validate before loading anything: a bad combination is a usage error
        resolve_subtype(fmt.value, bit_depth.value, "")
    target_name = name or "target"
    residual_name = f"no_{name}" if name else "residual"
    if name and not re.match(r"^[\w.-]{1,100}$", name):
        raise UsageError(f"--name {name[:40]!r}: up to 100 letters, digits, '_', '-' and '.'")
    positives, negatives = check_examples(like, not_, profile, class_name)
    class_alone = bool(class_name) and not (like or profile)
    if baseline and (not class_name or class_alone):
        raise UsageError("--baseline is the model --class averages in beside --like/--profile: give all three")
    if not files:
        if not quiet:
            say("mss: nothing to do (no audio files in this shard)")
        return

    from mss_cli.weights import BASELINE_WEIGHTS, shipped_weights

    if class_alone and not weights:
        weights = shipped_weights(BASELINE_WEIGHTS)
    model = load_model_for(weights, device)
    partner = (
        load_model_for(baseline or shipped_weights(BASELINE_WEIGHTS), device)
        if class_name and not class_alone
        else None
    )
    if jobs > 1 and model.device.type == "cpu":
        import torch

        # N files at once share the cores: N x all-core thread pools would oversubscribe them badly.
        torch.set_num_threads(max(1, torch.get_num_threads() // jobs))
    started = time.time()
    cond = conditioning_for(model, positives, negatives, profile, class_name, partner)
    if not suppress:
        cond = replace(cond, unwanted=None)
    if not quiet and not as_json:
        what = (
            f"class {class_name}"
            if class_alone
            else f"{len(cond.positives)} example(s)"
            + (f", {len(cond.negatives)} negative(s)" if cond.negatives else "")
            + (" (suppressed)" if cond.unwanted is not None else "")
        )
        averaged = f"; averaged with the class-conditioned baseline's {class_name}" if partner is not None else ""
        say(f"mss: {what} embedded in {time.time() - started:.1f} s on {model.device}{averaged}")

    from mss_cli.separate import Outputs, SeparationOptions, Stem

    options = SeparationOptions(
        chunk_seconds=chunk,
        overlap=overlap,
        batch_size=batch_size,
        precision=precision,
        shifts=shifts,
        fmt=fmt.value,
        bit_depth=bit_depth.value if bit_depth else None,
        mp3_bitrate=mp3_bitrate,
        overwrite=overwrite,
    )
    naming = Naming(Path(out), filename, FORMATS[fmt.value][1])
    plans: list[Plan] = []
    claimed: dict[Path, str] = {}
    sources = {Path(f).resolve(): f for f in files if f != STDIN}
    skipped = 0
    for f in files:
        if to_stdout:
            plans.append(Plan(f, Outputs({"target": Stem(target_name, "-")})))
            continue
        roles = {"target": target_name} if no_residual else {"target": target_name, "residual": residual_name}
        try:
            paths = {role: Stem(stem, naming.path(f, stem)) for role, stem in roles.items()}
        except MssError as exc:
            plans.append(Plan(f, None, str(exc)))
            continue
        replaced = next((sources[p.resolve()] for _, p in paths.values() if p.resolve() in sources), None)
        if replaced:
            plans.append(Plan(f, None, f"{f}: its output would replace the input {replaced} (change --filename or -o)"))
            continue
        if skip_existing and all(p.exists() for _, p in paths.values()):
            skipped += 1
            continue
        clash = next((claimed[p.resolve()] for _, p in paths.values() if p.resolve() in claimed), None)
        if clash:
            problem = f"{f}: its output name collides with that of {clash} (add {{parent}} to --filename)"
            plans.append(Plan(f, None, problem))
            continue
        for _, p in paths.values():
            claimed[p.resolve()] = f
        plans.append(Plan(f, Outputs(paths)))

    finished: list[str] = []
    try:
        failures = run_all(model, cond, plans, options, jobs, quiet, as_json, finished)
    except signals.Interrupted:
        if len(plans) > 1:  # what a stopped batch did, so it can be resumed (--skip-existing)
            say(f"mss: stopped; {len(finished)} of {len(plans)} file(s) had been separated")
        raise
    if not quiet and not as_json:
        done = len(plans) - len(failures)
        note = f" ({skipped} skipped: their outputs exist)" if skipped else ""
        say(f"mss: {done} of {len(plans)} file(s) separated in {time.time() - started:.1f} s{note}")
    if failures:
        if len(plans) > 1:  # a batch's failures, gathered after the progress output (one input's error stands alone)
            say(f"mss: {len(failures)} input(s) failed:")
            for message in failures:
                say(f"  {one_line(message)}")
        raise typer.Exit(1)


def run_all(
    model: ConditionedUNet,
    cond: Conditioning,
    plans: list[Plan],
    options: SeparationOptions,
    jobs: int,
    quiet: bool,
    as_json: bool,
    finished: list[str],
) -> list[str]:
    """Separate every planned file (in parallel threads with --jobs), reporting as files finish;
    returns the failures' messages, and appends each separated input to ``finished``."""
    from mss_cli.audio import spooled_stdin
    from mss_cli.inputs import STDIN
    from mss_cli.progress import make_progress
    from mss_cli.separate import separate_file

    failures: list[str] = []
    progress = make_progress(enabled=not quiet and sys.stderr.isatty(), total_files=len(plans))

    def one(plan: Plan) -> None:
        signals.check()  # files still queued when a signal came are not started
        source, outputs, problem = plan
        if problem:
            error(problem)
            failures.append(problem)
            return
        task = progress.file_task(source)

        def advance() -> None:
            signals.check()  # a worker thread stops at its next chunk once a signal stopped the run
            task.advance()

        try:
            if source == STDIN:
                with spooled_stdin() as tmp:
                    written = separate_file(
                        model, cond, tmp, outputs, options, label="-", on_chunk=advance, on_start=task.start
                    )
            else:
                written = separate_file(model, cond, source, outputs, options, on_chunk=advance, on_start=task.start)
        except stdio.OutputClosed:
            raise  # not this file's failure: the run's stdout is gone, so the run stops
        except MssError as exc:
            error(str(exc))
            failures.append(str(exc))
            return
        except Exception as exc:  # a bug must not stop the other files, nor print a traceback
            if os.environ.get("MSS_DEBUG"):
                raise
            message = f"{source}: internal error ({type(exc).__name__}: {exc}); MSS_DEBUG=1 shows the traceback"
            error(message)
            failures.append(message)
            return
        finally:
            task.finish()
        finished.append(source)
        for w in written:
            if w.clipped_samples:
                error(f"{w.path}: {w.clipped_samples} samples clipped (use --bit-depth 32f to keep them)")
            if as_json:
                print(json.dumps(asdict(w)), flush=True)

    with progress:
        if jobs == 1:
            for plan in plans:
                one(plan)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(one, plans))
    return failures


@app.command()
def embed(
    like: list[str] = typer.Option(..., "--like", "-l", help="Example clips of the instrument to keep."),
    not_: list[str] = typer.Option([], "--not", "-n", help="Example clips of what not to keep."),
    out: str = typer.Option(
        ..., "--out", "-o", help="Profile NAME (stored in the user data folder) or a .safetensors path."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing profile."),
    device: str = typer.Option("auto", "--device", "-d"),
    weights: Path | None = typer.Option(None, "--weights", help="Model file (default: the shipped model)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Embed example clips once and save the conditioning as a reusable profile (--profile)."""
    from mss_cli.conditioning import save_profile

    path = profile_path(out)
    if not overwrite:  # before the model loads (save_profile checks again, for Python callers)
        refuse_to_replace(path, "profile", usage=True)
    positives, negatives = check_examples(like, not_, None)
    model = load_model_for(weights, device)
    cond = conditioning_for(model, positives, negatives, None)
    save_profile(cond, path, overwrite)
    if not quiet:
        say(
            f"mss: profile saved: {path} ({len(cond.positives)} positive, {len(cond.negatives)} negative, "
            f"model {cond.model_id})"
        )


profiles_app = typer.Typer(
    help="List, show and remove the profiles stored in the user data folder (mss embed makes them).",
    context_settings=HELP_OPTIONS,
)
app.add_typer(profiles_app, name="profiles")


def profile_row(path: Path) -> dict:
    """What ``mss profiles`` says of one profile (a corrupt one is a ``UsageError``)."""
    from mss_cli.conditioning import profile_metadata

    meta = profile_metadata(path)
    return {
        "name": path.stem,
        "path": str(path),
        "model_id": meta["model_id"],
        "created": meta.get("created", ""),
        "positives": json.loads(meta.get("positives", "[]")),
        "negatives": json.loads(meta.get("negatives", "[]")),
    }


@profiles_app.callback(invoke_without_command=True)
def profiles(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="One JSON object per profile.")
) -> None:
    """List the profiles (a corrupt one is reported, and the exit code is 1)."""
    if ctx.invoked_subcommand is not None:
        return
    folder = profiles_dir()
    found = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    corrupt = 0
    if found and not as_json:
        print("NAME\tMODEL\tCREATED\tCLIPS (+like/-not)")
    for path in found:
        try:
            row = profile_row(path)
        except MssError as exc:
            error(str(exc))
            corrupt += 1
            continue
        if as_json:
            print(json.dumps(row))
        else:
            print(
                f"{row['name']}\t{row['model_id']}\t{row['created']}\t{len(row['positives'])}+/{len(row['negatives'])}-"
            )
    if not found and not as_json:
        say(f"mss: no profiles in {folder}")
    if corrupt:
        raise typer.Exit(1)


def existing_profile(name: str) -> Path:
    path = profile_path(name)
    if not path.is_file():
        raise UsageError(f"{path}: profile not found")
    return path


@profiles_app.command("show")
def profiles_show(
    name: str = typer.Argument(..., help="Profile NAME or .safetensors path."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One profile: its model and the example clips it was made from."""
    print_details(profile_row(existing_profile(name)), as_json)


@profiles_app.command("rm")
def profiles_rm(names: list[str] = typer.Argument(..., help="Profile NAMEs or .safetensors paths.")) -> None:
    """Remove profiles (all named ones must exist and be profiles: nothing is removed otherwise)."""
    from mss_cli.conditioning import profile_metadata

    paths = [existing_profile(n) for n in names]
    for path in paths:
        profile_metadata(path)  # a path given is removed only when it is a profile, never any file
    for path in paths:
        path.unlink()


@app.command()
def info(
    as_json: bool = typer.Option(False, "--json"),
    weights: Path | None = typer.Option(None, "--weights"),
) -> None:
    """Version, compute device, weights file (path, checksum) and model configuration."""
    import torch

    from mss_cli.device import pick_device
    from mss_cli.weights import checksum, load_model, read_metadata, shipped_weights

    path = weights or shipped_weights()
    try:
        meta = read_metadata(path)
        model = load_model(path, fuse=False)  # the trained parameters, as the model card counts them
    except MssError as exc:
        raise UsageError(str(exc)) from None
    details = {
        "version": __version__,
        "torch": torch.__version__,
        "device": pick_device("auto"),
        "cuda_devices": torch.cuda.device_count(),
        "weights": str(path),
        "sha256": checksum(path),
        "model_id": model.model_id,
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": {k: v for k, v in model.config.to_dict().items() if k != "class_names"},
        "training": {k: json.loads(v) for k, v in meta.items() if k in ("steps", "train_hours", "batch", "seed")},
        "profiles": str(profiles_dir()),
    }
    if model.config.kind == "classcond":
        from mss_cli.conditioning import trained_classes

        details["classes"] = trained_classes(model)  # what --class accepts (its table has untrained rows too)
    print_details(details, as_json)


def print_details(details: dict, as_json: bool) -> None:
    """One JSON object, or a "key: value" line per field (lists joined by commas, maps as JSON)."""
    if as_json:
        print(json.dumps(details))
        return
    for key, value in details.items():
        shown = (
            ", ".join(map(str, value))
            if isinstance(value, list)
            else json.dumps(value)
            if isinstance(value, dict)
            else value
        )
        print(f"{key}: {shown}")


@app.command("eval")
def evaluate_command(
    folder: Path = typer.Option(..., "--folder", help="Your own cases: CASE/mixture.*, target.*, like/*, not/*."),
    out: Path = typer.Option(Path("evaluation"), "--out", "-o", help="Where evaluation.md, .jsonl and .png go."),
    weights: Path | None = typer.Option(None, "--weights", help="Few-shot model (default: shipped)."),
    threads: int = typer.Option(0, "--threads", min=0, help="Torch CPU threads (0: default)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """Measure separation quality (SDR, SI-SDR, SDRi) on your own cases (needs the eval extra)."""
    from mss_cli import evaluate as ev
    from mss_cli import report

    report.check_outputs(out, overwrite)  # before the slow part
    model = load_model_for(weights, "cpu", threads)
    cases = ev.evaluate_folder(model, folder, progress=say)
    print(report.save(cases, out, recorded_command("mss")))


def recorded_command(prog: str) -> str:
    """This run's command line as a shell would re-run it (each argument quoted where it must be)."""
    import shlex

    return shlex.join([prog, *sys.argv[1:]])


def split_example_lists(argv: list[str]) -> list[str]:
    """Let --like/--not take several files, as an unquoted shell glob expands to.

    Click options take one value each; ``--like a.wav b.wav`` becomes ``--like a.wav --like b.wav``
    (every following word up to the next option belongs to the option).
    """
    out: list[str] = []
    current: str | None = None
    for word in argv:
        if word == "--":
            current = None
            out.append(word)
        elif word in EXAMPLE_OPTIONS:
            current = word
        elif current and (not word.startswith("-") or word == "-"):
            out += [current, word]
        else:
            current = None
            out.append(word)
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``mss``."""
    keep_libraries_off_stderr()
    run_app(app, "mss", split_example_lists(list(sys.argv[1:] if argv is None else argv)))


def keep_libraries_off_stderr() -> None:
    """Decoders inside libsndfile (libmpg123) print notes and warnings straight to file descriptor 2
    ("Warning: Xing stream size off ..."), which would break mss's one line per error. mss's own
    messages go to a duplicate of the real stderr, and descriptor 2 to /dev/null. Not where stderr
    is not the process's own (tests capturing it) or with MSS_DEBUG=1 (everything is shown)."""
    if sys.stderr is not sys.__stderr__ or os.environ.get("MSS_DEBUG"):
        return
    try:
        real = os.dup(2)
        quiet = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    sys.stderr.flush()
    sys.stderr = open(real, "w", buffering=1, encoding=sys.__stderr__.encoding, errors="backslashreplace")  # noqa: SIM115
    os.dup2(quiet, 2)
    os.close(quiet)


def run_app(typer_app: typer.Typer, prog: str, args: list[str]) -> None:
    """Run a command line of ``typer_app``: one-line errors and the documented exit codes, whatever goes wrong."""
    signals.install()
    stdio.guard_stdout()
    try:
        code = typer_app(args=args, prog_name=prog, standalone_mode=False)
    except stdio.OutputClosed as exc:
        stdio.silence_stdout()
        if not exc.reader_gone:  # `| head` taking what it wants is no error worth a line
            error(str(exc))
        sys.exit(exc.exit_code)
    except signals.Interrupted as exc:
        error({signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}.get(exc.signum, "interrupted"))
        sys.exit(exc.exit_code)
    except MssError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if "\n" in message:  # the help text itself ('mss' alone): on stdout, as --help prints it
            print(message)
        elif message.strip():  # (an empty one is 'no arguments', whose help is printed already)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            if message.startswith("Missing argument 'INPUT") and any(a in EXAMPLE_OPTIONS for a in args):
                hint = (
                    " (--like and --not take every word up to the next option: put INPUT before them, or last after --)"
                )
            error(message + hint)
        sys.exit(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("MSS_DEBUG"):
            raise
        error(f"internal error ({type(exc).__name__}: {exc}); MSS_DEBUG=1 shows the traceback")
        sys.exit(1)
    if code == 130:  # Typer turns Ctrl-C into exit code 130 without a word
        error("interrupted")
    sys.exit(code if isinstance(code, int) else 0)
