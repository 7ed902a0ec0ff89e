"""Speed and memory of mss, and of peers' architectures, on one machine in one run; prints a table.

    python benchmarks/bench.py [--threads 2] [--skip-peers] [--only targets|threads|nmf]

All figures come from the same 3-minute 44.1 kHz stereo track (the demo mix, repeated). The peers
(HTDemucs, Open-Unmix) run with random weights: weights do not change speed. They are optional,
benchmark-only installs: `pip install --no-deps demucs openunmix && pip install einops julius`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import soundfile as sf

from mss_cli.audio import SAMPLE_RATE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def make_track(path: Path, seconds: float) -> Path:
    """The demo mix repeated (alternately reversed) to ``seconds``, written block by block."""
    mix, _ = sf.read(EXAMPLES / "demo_mix.flac", dtype="float32")
    with sf.SoundFile(path, "w", SAMPLE_RATE, 2, subtype="PCM_16") as fh:
        left, flip = int(seconds * SAMPLE_RATE), False
        while left > 0:
            piece = (mix[::-1] if flip else mix)[:left]
            fh.write(piece)
            left -= len(piece)
            flip = not flip
    return path


def mss(*args: str, threads: int | None, env: dict | None = None) -> tuple[float, dict]:
    """Run the mss CLI in a fresh process; returns wall seconds and the child's peak RSS and, where
    it used CUDA, peak GPU memory reserved by torch (MB). ``threads``: the OpenMP threads it is
    given (None: as the environment has them)."""
    env = dict(os.environ, **(env or {}))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code = (
        "import resource, sys, json\nfrom mss_cli.cli import main\nrc = 0\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code or 0\n"
        "t = sys.modules.get('torch')\n"
        "gpu = t.cuda.max_memory_reserved() / 2**20 if t is not None and t.cuda.is_initialized() else None\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps({'rss_mb': rss, 'gpu_mb': gpu}), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    started = time.time()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    wall = time.time() - started
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return wall, json.loads(proc.stderr.strip().splitlines()[-1])


def model_rtf(threads: int, precision: str, seconds: float = 20.0, repeats: int = 3) -> float:
    """Our model's forward pass alone (stereo chunk, shipped weights, conditioning folded in, as
    `mss separate` runs it): the ceiling for end to end."""
    import torch

    from mss_cli.conditioning import Conditioning
    from mss_cli.engine import make_separator
    from mss_cli.targets import Target
    from mss_cli.weights import load_model

    torch.set_num_threads(threads)
    model = load_model()
    cond = Conditioning(torch.randn(model.config.cond_dim), model.model_id, [], [])
    run = make_separator([Target("t", model, cond)], precision)
    x = torch.randn(2, int(seconds * SAMPLE_RATE))
    run(x)
    started = time.time()
    for _ in range(repeats):
        run(x)
    return seconds * repeats / (time.time() - started)


def auto_precision() -> str:
    from mss_cli.device import autocast_dtype

    return "bf16" if autocast_dtype("cpu", "auto") is not None else "fp32"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def peer_rtf(name: str, track: np.ndarray, threads: int) -> float | None:
    """Seconds of audio per second for a peer architecture (random weights), or None if not installed."""
    import torch

    torch.set_num_threads(threads)
    x = torch.from_numpy(track.T.copy())[None]
    try:
        if name == "HTDemucs":
            from demucs.apply import apply_model
            from demucs.htdemucs import HTDemucs

            model = HTDemucs(sources=["drums", "bass", "other", "vocals"]).eval()
            run = lambda: apply_model(model, x, shifts=0, split=True, overlap=0.25, progress=False)  # noqa: E731
        else:
            sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # imported, never used
            import openunmix  # noqa: F401  (only to locate the package folder)

            folder = Path(sys.modules["openunmix"].__file__).parent
            pkg = types.ModuleType("umx_pkg")
            pkg.__path__ = [str(folder)]
            sys.modules["umx_pkg"] = pkg
            umx = importlib.import_module("umx_pkg.model")
            targets = {
                t: umx.OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=512, max_bin=1487)
                for t in ("vocals", "drums", "bass", "other")
            }
            model = umx.Separator(targets, niter=1, n_fft=4096, n_hop=1024, nb_channels=2).eval()
            run = lambda: model(x)  # noqa: E731
    except ImportError:
        return None
    with torch.inference_mode():
        started = time.time()
        run()
        return track.shape[0] / SAMPLE_RATE / (time.time() - started)


def separate_median(track_path: Path, common: list[str], threads: int) -> tuple[float, dict]:
    """`mss separate` once to warm the caches, then three timed runs: the median wall seconds and
    the first timed run's memory figures."""
    mss("separate", str(track_path), *common, threads=threads)
    runs = [mss("separate", str(track_path), *common, threads=threads) for _ in range(3)]
    return float(np.median([wall for wall, _ in runs])), runs[0][1]


def gpu_rows(
    tmp_path: Path, track_path: Path, clips: list[str], minutes: float, long_minutes: float
) -> list[tuple[str, str]]:
    """End-to-end speed and peak GPU memory of `mss separate --device cuda`, on the speed track and
    on the long track (its memory must not grow with the track either)."""
    common = ["--like", *clips, "--device", "cuda", "--quiet", "--overwrite", "-o", str(tmp_path / "out-gpu")]
    wall, stats = separate_median(track_path, common, threads=2)
    rows = [
        (
            f"GPU ({gpu_name()}): mss separate, {minutes:g}-min track, end to end (RTF; median of 3)",
            f"{minutes * 60 / wall:.1f}x ({wall:.2f} s; peak GPU memory {stats['gpu_mb']:.0f} MB)",
        )
    ]
    long_path = make_track(tmp_path / "long-gpu.wav", long_minutes * 60)
    long_wall, stats = mss("separate", str(long_path), *common, threads=2)
    rows.append(
        (
            f"GPU: mss separate, {long_minutes:g}-min track (RTF; peak GPU memory; peak RSS)",
            f"{long_minutes * 60 / long_wall:.1f}x "
            f"({long_wall:.1f} s; {stats['gpu_mb']:.0f} MB; {stats['rss_mb']:.0f} MB)",
        )
    )
    long_path.unlink()
    return rows


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the speed track")
    parser.add_argument("--long-minutes", type=float, default=30.0, help="length of the long memory track")
    parser.add_argument("--batch-files", type=int, default=5, help="tracks in the one-invocation batch row")
    parser.add_argument("--shifts", type=int, default=4, help="--shifts value of the shift-averaging row")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="add rows for `--device cuda` (needs a CUDA GPU)")
    parser.add_argument("--gpu-only", action="store_true", help="measure only the GPU rows (on a borrowed GPU machine)")
    parser.add_argument("--only", choices=("targets", "threads", "nmf"), help="measure only these CPU rows")
    args = parser.parse_args()
    clips = sorted(str(p) for p in (EXAMPLES / "clips").glob("trumpet_*.flac"))[:4] + [
        str(EXAMPLES / "clips" / "bass_1.flac")
    ]
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        track_path = make_track(tmp_path / "track.wav", args.minutes * 60)
        if args.gpu or args.gpu_only:
            rows += gpu_rows(tmp_path, track_path, clips, args.minutes, args.long_minutes)
        if args.only == "targets":
            rows += target_rows(tmp_path, track_path, args)
        elif args.only == "threads":
            rows += thread_rows(tmp_path, args)
        elif args.only == "nmf":
            rows += nmf_rows(tmp_path, track_path, clips, args)
        elif not args.gpu_only:
            rows += cpu_rows(tmp_path, track_path, clips, args)
            rows += nmf_rows(tmp_path, track_path, clips, args)
            rows += target_rows(tmp_path, track_path, args)
            rows += thread_rows(tmp_path, args)
    print(
        f"Machine: {cpu_name()} ({platform.machine()}), {os.cpu_count()} CPUs, {args.threads} torch threads, "
        f"Python {platform.python_version()}"
    )
    print("\n| measurement | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def nmf_rows(tmp_path: Path, track_path: Path, clips: list[str], args: argparse.Namespace) -> list[tuple[str, str]]:
    """What NMF costs: the track with 2 --not clips, with --no-nmf, by default (NMF joined in
    wherever there are --not clips) and with --nmf (median of 3)."""
    negatives = sorted(str(p) for p in (EXAMPLES / "clips").glob("bass_*.flac"))[1:3]
    common = ["--like", *clips, "--not", *negatives, "--device", "cpu", "--quiet", "--overwrite"]
    rows = []
    for label, extra in (("--no-nmf", ["--no-nmf"]), ("default", []), ("--nmf", ["--nmf"])):
        wall, _ = separate_median(track_path, [*common, *extra, "-o", str(tmp_path / "nmf")], threads=args.threads)
        rows.append(
            (
                f"mss separate, {args.minutes:g}-min stereo track, 2 --not clips, {label} (RTF; median of 3)",
                f"{args.minutes * 60 / wall:.1f}x ({wall:.2f} s)",
            )
        )
    return rows


def cpu_rows(tmp_path: Path, track_path: Path, clips: list[str], args: argparse.Namespace) -> list[tuple[str, str]]:
    """The CPU table: end-to-end speed, embedding and start-up times, peak RSS, and the peers."""
    rows: list[tuple[str, str]] = []
    common = ["--like", *clips, "--device", "cpu", "--quiet", "--overwrite", "-o", str(tmp_path / "out")]
    wall, _ = separate_median(track_path, common, threads=args.threads)
    ours = args.minutes * 60 / wall
    rows.append(
        (
            f"mss separate, {args.minutes:g}-min stereo track, end to end (RTF, x real time; median of 3)",
            f"{ours:.1f}x ({wall:.2f} s; --precision auto = {auto_precision()})",
        )
    )
    wall32, _ = mss("separate", str(track_path), *common, "--precision", "fp32", threads=args.threads)
    rows.append(("  the same with --precision fp32", f"{args.minutes * 60 / wall32:.1f}x ({wall32:.2f} s)"))
    negatives = sorted(str(p) for p in (EXAMPLES / "clips").glob("bass_*.flac"))[1:3]
    wall_not, _ = mss("separate", str(track_path), *common, "--not", *negatives, threads=args.threads)
    rows.append(
        (
            f"  the same with {len(negatives)} --not clips of one instrument (suppressed)",
            f"{args.minutes * 60 / wall_not:.1f}x ({wall_not:.2f} s)",
        )
    )
    wall_class, _ = mss("separate", str(track_path), *common, "--with-class", "trumpet", threads=args.threads)
    rows.append(
        (
            "  the same with --with-class trumpet (the baseline's mask averaged in)",
            f"{args.minutes * 60 / wall_class:.1f}x ({wall_class:.2f} s)",
        )
    )
    wall_shifts, _ = mss("separate", str(track_path), *common, "--shifts", str(args.shifts), threads=args.threads)
    rows.append(
        (f"  the same with --shifts {args.shifts}", f"{args.minutes * 60 / wall_shifts:.1f}x ({wall_shifts:.2f} s)")
    )
    copies = [track_path] + [tmp_path / f"copy{i}.wav" for i in range(1, args.batch_files)]
    for c in copies[1:]:
        os.link(track_path, c)  # a hard link: a symlink would be the same input, separated once
    batch_wall, _ = mss("separate", *map(str, copies), *common, threads=args.threads)
    rows.append(
        (
            f"  {args.batch_files} such tracks in one invocation (start-up paid once; RTF)",
            f"{args.batch_files * args.minutes * 60 / batch_wall:.1f}x ({batch_wall:.2f} s)",
        )
    )
    for precision in ("fp32", "bf16"):
        rows.append(
            (
                f"  model forward pass alone, {precision} (20-s stereo chunk, RTF)",
                f"{model_rtf(args.threads, precision):.1f}x",
            )
        )
    embed_wall, _ = mss(
        "embed",
        "--like",
        *clips,
        "-o",
        str(tmp_path / "p.safetensors"),
        "--overwrite",
        "--device",
        "cpu",
        "--quiet",
        threads=args.threads,
    )
    load_wall, _ = mss("info", "--json", threads=args.threads)
    rows.append(("embedding 5 example clips (mss embed, incl. start-up and model load)", f"{embed_wall:.2f} s"))
    rows.append(("  of which start-up + model load (mss info)", f"{load_wall:.2f} s"))
    helps = []
    for _ in range(5):
        started = time.time()
        subprocess.run([sys.executable, "-m", "mss_cli", "--help"], capture_output=True, check=True)
        helps.append(time.time() - started)
    rows.append(("mss --help start-up (median of 5)", f"{np.median(helps):.2f} s"))
    rss = {}
    for minutes in (1.0, args.long_minutes):
        path = make_track(tmp_path / f"long{minutes:g}.wav", minutes * 60)
        _, stats = mss("separate", str(path), *common, threads=args.threads)
        rss[minutes] = stats["rss_mb"]
        rows.append((f"peak RSS, {minutes:g}-min track", f"{stats['rss_mb']:.0f} MB"))
        path.unlink()
    rows.append(("peak RSS growth, long vs 1-min track", f"{(rss[args.long_minutes] / rss[1.0] - 1) * 100:+.1f}%"))
    if not args.skip_peers:
        track, _ = sf.read(track_path, dtype="float32")
        for peer in ("HTDemucs", "Open-Unmix"):
            rtf = peer_rtf(peer, track, args.threads)
            if rtf is None:
                rows.append((f"{peer} (random weights)", "not installed"))
            else:
                rows.append(
                    (f"{peer} (random weights, model only, RTF)", f"{rtf:.1f}x; mss is {ours / rtf:.1f}x faster")
                )
    return rows


def target_rows(tmp_path: Path, track_path: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Three targets (two profiles and a class) in one run against three runs of one target each:
    one decode, one start-up, each model loaded once and one STFT, against three of each."""
    for instrument in ("trumpet", "bass"):
        likes = sorted(str(p) for p in (EXAMPLES / "clips").glob(f"{instrument}_*.flac"))
        profile = str(tmp_path / f"{instrument}.safetensors")
        mss("embed", "--like", *likes, "-o", profile, "--overwrite", "--device", "cpu", "-q", threads=args.threads)
    targets = [
        ["--profile", str(tmp_path / "trumpet.safetensors")],
        ["--profile", str(tmp_path / "bass.safetensors")],
        ["--class", "drums"],
    ]
    common = [str(track_path), "--device", "cpu", "--quiet", "--overwrite", "-o", str(tmp_path / "out-targets")]
    mss("separate", *common, *targets[0], threads=args.threads)  # warm the caches
    one = float(np.median([mss("separate", *common, *sum(targets, []), threads=args.threads)[0] for _ in range(3)]))
    each = [
        float(np.median([mss("separate", *common, *t, threads=args.threads)[0] for _ in range(3)])) for t in targets
    ]
    return [
        (
            f"3 targets (2 profiles, a class) of a {args.minutes:g}-min track in one run, vs 3 runs (median of 3)",
            f"{one:.2f} s vs {sum(each):.2f} s ({' + '.join(f'{e:.2f}' for e in each)}): {one / sum(each):.0%}",
        )
    ]


def thread_rows(tmp_path: Path, args: argparse.Namespace) -> list[tuple[str, str]]:
    """The --threads and --jobs defaults against torch's (all cores, one file at a time), on a
    quiet machine and on one whose every core another process keeps busy: one track, and a batch."""
    from mss_cli.batch import cpu_count

    cores = cpu_count()
    track = make_track(tmp_path / "threads.wav", 60.0)
    batch = [track] + [tmp_path / f"threads{i}.wav" for i in range(1, 8)]
    for c in batch[1:]:
        c.unlink(missing_ok=True)
        os.link(track, c)  # a hard link: a symlink would be the same input, separated once
    like = ["--like", *sorted(str(p) for p in (EXAMPLES / "clips").glob("trumpet_*.flac"))]
    common = [*like, "--device", "cpu", "--quiet", "--overwrite", "-o", str(tmp_path / "out-threads")]
    settings = {
        f"torch's: {cores} threads, 1 job": ["--threads", str(cores), "--jobs", "1"],
        "mss's (--threads 0 --jobs 0)": [],
        "1 thread, 1 job": ["--threads", "1", "--jobs", "1"],
    }
    rows = []
    for load in ("quiet", "busy"):
        burners = [] if load == "quiet" else [busy_process() for _ in range(cores)]
        try:
            time.sleep(0 if load == "quiet" else 60)  # the load average the default reads catches up
            for name, extra in settings.items():
                one = float(
                    np.median([mss("separate", str(track), *common, *extra, threads=None)[0] for _ in range(2)])
                )
                many, _ = mss("separate", *map(str, batch), *common, *extra, threads=None)
                rows.append((f"{load} machine, {name}: 1-min track; 8 such tracks", f"{one:.2f} s; {many:.2f} s"))
        finally:
            for proc in burners:
                proc.kill()
    return rows


def busy_process() -> subprocess.Popen:
    """A process that keeps one core busy (another user's work) until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


if __name__ == "__main__":
    main()
