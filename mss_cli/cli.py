"""The ``mss`` command: option declarations and calls into the library (``Separator``,
``batch``, ``profiles``); everything it does is available from Python.

Heavy modules (torch, the model) are imported inside commands so ``mss --help`` starts fast.
Every failure is one line on stderr, ``mss: error: ...``, with the exit codes of ``runner``.
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path

import typer

from mss_cli import __version__, signals
from mss_cli.errors import MssError, UsageError, one_line
from mss_cli.formats import BIT_DEPTHS, FORMATS
from mss_cli.runner import HELP_OPTIONS, error, recorded_command, run_app, say

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
  mss separate song.wav --profile guitar --profile vocals --class drums
  mss separate song.wav --target guitar=clips/guitar_*.wav --target sax=clips/sax_*.wav
  mss separate album/ --profile guitar -o stems --format flac --json
  ffmpeg -i live.mkv -f wav - | mss separate - --like violin.wav -o - | ffplay -

Exit codes: 0 all separated, 1 some inputs failed, 2 usage error, 130/143/129 interrupted,
141 stdout's reader went away.
"""
CLIP_OPTIONS = ("--like", "--not", "-l", "-n", "--target")
Format = Enum("Format", {name: name for name in FORMATS}, type=str)  # type: ignore[misc]
BitDepth = Enum("BitDepth", {f"b{depth}": depth for depth in BIT_DEPTHS}, type=str)  # type: ignore[misc]


def print_version(value: bool) -> None:
    """``mss --version``: eager, so it answers before any command is parsed (and imports no torch)."""
    if value:
        print(f"mss {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(False, "--version", callback=print_version, is_eager=True, help="Print the version."),
) -> None:
    """Few-shot music source separation: pull instruments out of a recording, given a few example clips of each."""


@app.command(epilog=SEPARATE_EXAMPLES)
def separate(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="Audio files, folders, globs, or - (stdin)."),
    like: list[str] = typer.Option(
        [],
        "--like",
        "-l",
        metavar="CLIP...",
        help="Clips of the instrument to keep (files, globs).",
    ),
    not_: list[str] = typer.Option([], "--not", "-n", metavar="CLIP...", help="Clips of what NOT to keep."),
    grouped: list[str] = typer.Option(
        [], "--target", "-t", metavar="NAME=CLIP...", help="A named target's clips (repeatable)."
    ),
    profiles: list[str] = typer.Option([], "--profile", "-p", metavar="NAME", help="A profile as target (repeatable)."),
    classes: list[str] = typer.Option([], "--class", metavar="CLASS", help="A class as target (repeatable; mss info)."),
    with_class: str | None = typer.Option(
        None,
        "--with-class",
        metavar="CLASS",
        help="Average the target with the class model's CLASS.",
    ),
    suppress: bool = typer.Option(
        True,
        "--suppress/--no-suppress",
        help="Take each --not instrument out of the target.",
    ),
    name: str | None = typer.Option(None, "--name", help="Name of a single target's stem."),
    adapt: bool = typer.Option(False, "--adapt", help="Tune clip targets on mixtures of their --like and --not clips."),
    nmf: bool | None = typer.Option(
        None,
        "--nmf/--no-nmf",
        help="More NMF from the --like and --not clips, or none [default: half where alike, a little elsewhere].",
    ),
    out: str = typer.Option("separated", "--out", "-o", help="Output folder, or - (stdout)."),
    filename: str = typer.Option(
        "{track}/{stem}.{ext}", "--filename", help="Name template: {track} {stem} {ext} {parent}."
    ),
    no_residual: bool = typer.Option(False, "--no-residual", help="Do not write the residual."),
    fmt: Format = typer.Option("wav", "--format", "-f", help="Output format."),
    bit_depth: BitDepth | None = typer.Option(None, "--bit-depth", help="wav/flac bit depth (default: the input's)."),
    mp3_bitrate: int | None = typer.Option(None, "--mp3-bitrate", min=32, max=320, help="MP3 kbit/s."),
    device: str = typer.Option("auto", "--device", "-d", help="auto, cpu, cuda, cuda:N or mps."),
    chunk: float = typer.Option(10.0, "--chunk", min=1.0, max=30.0, help="Chunk seconds."),
    overlap: float = typer.Option(0.15, "--overlap", min=0.0, max=0.9, help="Chunk overlap."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, max=256, help="Chunks per pass (GPU)."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16."),
    shifts: int = typer.Option(1, "--shifts", min=1, max=16, help="Time-shifted passes."),
    threads: int = typer.Option(0, "--threads", min=0, max=1024, help="CPU threads (0: idle cores)."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, max=64, help="Files at once (0: auto)."),
    shard_spec: str | None = typer.Option(None, "--shard", metavar="I/N", help="Only the I-th of N slices."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip inputs already done."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only on stderr."),
    as_json: bool = typer.Option(False, "--json", help="A JSON line per file written."),
    weights: Path | None = typer.Option(None, "--weights", help="Few-shot model file."),
    baseline: Path | None = typer.Option(None, "--baseline", help="Class model file."),
) -> None:
    """Separate the instruments shown by --like, --target, --profile or --class from each INPUT, and the rest."""
    from mss_cli.batch import IdleMeter, default_jobs, default_threads, plan_batch, run_batch
    from mss_cli.device import check_device, check_precision
    from mss_cli.inputs import STDIN, Naming, check_template, expand_inputs, parse_shard, shard
    from mss_cli.progress import make_progress
    from mss_cli.targets import residual_name, specs_from_options, stem_names

    meter, to_stdout = IdleMeter(), out == "-"
    unreadable: list[str] = []
    files = shard(expand_inputs(inputs, None if to_stdout else Path(out), unreadable), parse_shard(shard_spec))
    for folder in unreadable:  # said even with --quiet: files the user asked for are left out
        say(f"mss: warning: skipped a folder that cannot be read: {one_line(folder)}")
    if to_stdout and len(files) != 1:
        raise UsageError("-o - writes one stream: give exactly one input")
    if STDIN in files and (sys.stdin is None or sys.stdin.isatty()):
        raise UsageError("- reads audio from stdin, which is a terminal or closed: pipe or redirect a file into it")
    if to_stdout and sys.stdout.isatty():
        raise UsageError("-o - writes audio to stdout, which is a terminal: redirect it to a file or a pipe")
    if mp3_bitrate and fmt.value != "mp3":
        raise UsageError("--mp3-bitrate goes with --format mp3")
    if skip_existing and overwrite:
        raise UsageError("--skip-existing and --overwrite contradict each other: choose one")
    check_template(filename)
    check_precision(precision)
    check_device(device)
    if bit_depth:
        from mss_cli.audio import resolve_subtype

        resolve_subtype(fmt.value, bit_depth.value, "")
    specs = specs_from_options(like, not_, grouped, profiles, classes, with_class, name, suppress, adapt, nmf)
    class_only = all(s.class_name is not None for s in specs)
    if class_only and weights and not baseline:
        weights, baseline = None, weights  # --weights names the class model when only classes are asked
    if baseline and not (classes or with_class):
        raise UsageError("--baseline is the class-conditioned model of --class and --with-class: give one of those")
    from mss_cli.classes import trained_classes_of

    trained = trained_classes_of(baseline) if classes or with_class else []
    names = [s.resolved_name(trained) for s in specs]
    stems = stem_names(names)
    written = names if no_residual or to_stdout else stems
    naming = None if to_stdout else Naming(Path(out), filename, FORMATS[fmt.value].extension)
    batch = plan_batch(files, written, naming, skip_existing)
    if not batch.plans:
        if not quiet:
            note = f": all {batch.skipped} input(s) have their outputs" if batch.skipped else " (no audio files)"
            say(f"mss: nothing to do{note}")
        return

    from mss_cli.api import Separator, set_threads

    started = time.time()
    options = {"chunk_seconds": chunk, "overlap": overlap, "batch_size": batch_size, "shifts": shifts}
    separator = Separator(weights, device, precision, baseline=baseline, **options)
    cpu = separator.device == "cpu"
    threads = threads or default_threads(meter)  # measured over the start-up: torch and the model loading
    jobs = jobs or default_jobs(len(batch.plans), threads, cpu)
    set_threads(max(1, threads // jobs) if cpu else threads)
    for spec in specs:
        separator.add_spec(spec)
    if not quiet and not as_json:
        ready = f"ready in {time.time() - started:.1f} s on {separator.device}"
        say(f"mss: {separator.describe()}; {ready}; residual: {residual_name(names)}")
    depth = bit_depth.value if bit_depth else None
    write = {"fmt": fmt.value, "bit_depth": depth, "mp3_bitrate": mp3_bitrate, "overwrite": overwrite}
    plans, finished = batch.plans, []

    def written_one(w) -> None:
        if w.clipped_samples:
            error(f"{w.path}: {w.clipped_samples} samples clipped (use --bit-depth 32f to keep them)")
        if as_json:
            print(json.dumps(w.__dict__), flush=True)

    progress = make_progress(enabled=not quiet and sys.stderr.isatty(), total_files=len(plans))
    try:
        failures = run_batch(separator, plans, write, jobs, progress, error, written_one, finished)
    except signals.Interrupted:
        if len(plans) > 1:  # what a stopped batch did, so it can be resumed (--skip-existing)
            say(f"mss: stopped; {len(finished)} of {len(plans)} file(s) had been separated")
        raise
    if not quiet and not as_json:
        note = f" ({batch.skipped} skipped: their outputs exist)" if batch.skipped else ""
        done = f"{len(plans) - len(failures)} of {len(plans)} file(s)"
        say(f"mss: {done} separated in {time.time() - started:.1f} s{note}")
    if failures:
        if len(plans) > 1:  # a batch's failures, gathered after the progress output (one input's error stands alone)
            say(f"mss: {len(failures)} input(s) failed:")
            for message in failures:
                say(f"  {one_line(message)}")
        raise typer.Exit(1)


@app.command()
def embed(
    like: list[str] = typer.Option(..., "--like", "-l", help="Example clips of the instrument to keep."),
    not_: list[str] = typer.Option([], "--not", "-n", help="Example clips of what not to keep."),
    out: str = typer.Option(
        ..., "--out", "-o", help="Profile NAME (stored in the user data folder) or a .safetensors path."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing profile."),
    adapt: bool = typer.Option(False, "--adapt", help="Tune the vector on mixtures of the --like and --not clips."),
    nmf: bool | None = typer.Option(
        None,
        "--nmf/--no-nmf",
        help="Store more NMF from the --like and --not clips, or none [default: as mss separate joins it].",
    ),
    device: str = typer.Option("auto", "--device", "-d"),
    weights: Path | None = typer.Option(None, "--weights", help="Model file (default: the shipped model)."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Embed example clips once and save the conditioning as a reusable profile (--profile)."""
    from mss_cli.api import Separator
    from mss_cli.conditioning import save_profile
    from mss_cli.files import refuse_to_replace
    from mss_cli.profiles import profile_path
    from mss_cli.targets import specs_from_options

    path = profile_path(out)
    if not overwrite:  # before the model loads (save_profile checks again, for Python callers)
        refuse_to_replace(path, "profile", usage=True)
    (spec,) = specs_from_options(like, not_, [], [], [], None, None, True, adapt, nmf)
    separator = Separator(weights, device)
    separator.add_spec(spec)
    cond = separator.targets[0].cond
    save_profile(cond, path, overwrite)
    if not quiet:
        clips = f"{len(cond.positives)} positive, {len(cond.negatives)} negative"
        say(f"mss: profile saved: {path} ({clips}, model {cond.model_id})")


profiles_app = typer.Typer(
    help="List, show and remove the profiles stored in the user data folder (mss embed makes them).",
    context_settings=HELP_OPTIONS,
)
app.add_typer(profiles_app, name="profiles")


@profiles_app.callback(invoke_without_command=True)
def profiles(
    ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="One JSON object per profile.")
) -> None:
    """List the profiles (a corrupt one is reported, and the exit code is 1)."""
    from mss_cli.profiles import profile_row, profiles_dir, stored_profiles

    if ctx.invoked_subcommand is not None:
        return
    found, corrupt = stored_profiles(), 0
    if found and not as_json:
        print("NAME\tMODEL\tCREATED\tCLIPS (+like/-not)")
    for path in found:
        try:
            row = profile_row(path)
        except MssError as exc:
            error(str(exc))
            corrupt += 1
            continue
        clips = f"{len(row['positives'])}+/{len(row['negatives'])}-"
        print(json.dumps(row) if as_json else f"{row['name']}\t{row['model_id']}\t{row['created']}\t{clips}")
    if not found and not as_json:
        say(f"mss: no profiles in {profiles_dir()}")
    if corrupt:
        raise typer.Exit(1)


@profiles_app.command("show")
def profiles_show(
    name: str = typer.Argument(..., help="Profile NAME or .safetensors path."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """One profile: its model and the example clips it was made from."""
    from mss_cli.profiles import existing_profile, profile_row

    print_details(profile_row(existing_profile(name)), as_json)


@profiles_app.command("rm")
def profiles_rm(names: list[str] = typer.Argument(..., help="Profile NAMEs or .safetensors paths.")) -> None:
    """Remove profiles (all named ones must exist and be profiles: nothing is removed otherwise)."""
    from mss_cli.profiles import remove_profiles

    remove_profiles(names)


@app.command()
def info(
    as_json: bool = typer.Option(False, "--json"),
    weights: Path | None = typer.Option(None, "--weights", help="Model file (default: the shipped few-shot model)."),
    baseline: Path | None = typer.Option(None, "--baseline", help="Class-conditioned model whose classes are listed."),
) -> None:
    """Version, device, weights (path, checksum, configuration), and the --class names with their synonyms."""
    from mss_cli.api import model_details

    print_details(model_details(weights, baseline), as_json)


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
    threads: int = typer.Option(
        0, "--threads", min=0, help="Torch CPU threads (0: the cores other processes leave idle)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the results of an earlier run in --out."),
) -> None:
    """Measure separation quality (SDR, SI-SDR, SDRi) on your own cases (needs the eval extra)."""
    from mss_cli import evaluate as ev
    from mss_cli import report
    from mss_cli.api import open_model, set_threads
    from mss_cli.batch import IdleMeter, default_threads

    report.check_outputs(out, overwrite)  # before the slow part
    meter = IdleMeter()
    model = open_model(weights, "cpu")
    set_threads(threads or default_threads(meter))
    cases = ev.evaluate_folder(model, folder, progress=say)
    print(report.save(cases, out, recorded_command("mss")))


def split_clip_lists(argv: list[str]) -> list[str]:
    """Let --like/--not/--target take several files, as an unquoted shell glob expands to.

    Click options take one value each; ``--like a.wav b.wav`` becomes ``--like a.wav --like b.wav``
    and ``--target g=a.wav b.wav`` becomes ``--target g=a.wav --target g=b.wav`` (every following
    word up to the next option belongs to the option).
    """
    out: list[str] = []
    current: str | None = None
    prefix = ""
    for word in argv:
        if word == "--":
            current = None
            out.append(word)
        elif word in CLIP_OPTIONS:
            current, prefix = word, ""
        elif current and (not word.startswith("-") or word == "-"):
            if current == "--target":
                key, sep, _ = word.partition("=")
                prefix = f"{key}=" if sep and not prefix else prefix
                word = word if sep else prefix + word
            out += [current, word]
        else:
            current = None
            out.append(word)
    return out


def usage_hint(message: str, args: list[str]) -> str:
    if message.startswith("Missing argument 'INPUT") and any(a in CLIP_OPTIONS for a in args):
        return " (--like, --not and --target take every word up to the next option: put INPUT first, or last after --)"
    return ""


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``mss``."""
    from mss_cli.runner import keep_libraries_off_stderr

    keep_libraries_off_stderr()
    run_app(app, "mss", split_clip_lists(list(sys.argv[1:] if argv is None else argv)), usage_hint)
