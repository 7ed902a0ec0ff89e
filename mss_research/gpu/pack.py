"""Encode a dataset's train and val stems as Opus and pack them into chunks that fit one device call.

A lent GPU machine has none of our renderer (FluidSynth, soundfonts) and a call carries at most
64 MiB of working tree, while the dataset is 13 GB of int16 stems. Each stem's mid channel, Opus at
about 29 kb/s, is ~1.8% of that (19 dB SNR; training then sees coded mono audio, which the model
card weighs). Whole works go together (a mixture needs all its stems), validation works first.

    python -m mss_research.gpu.pack DATA OUT [--jobs 2]    # resumable; prints the chunks made

Chunks already made are kept (they may have been sent); a rerun packs the works encoded since.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

CHUNK_BYTES = 45e6  # 64 MiB per call, less the tracked tree (~18 MB)
FIRST_CHUNK_BYTES = 43e6  # the first call also carries the wheels (~2 MB)


def opus_name(row: dict) -> str:
    return row["path"].replace("/", "__") + ".ogg"


def encode(job: tuple[Path, Path, dict]) -> None:
    root, out, row = job
    dst = out / opus_name(row)
    if dst.exists():
        return
    stereo = np.load(root / row["path"])
    mid = (stereo[:, 0].astype(np.float32) + stereo[:, 1]) * np.float32(0.5 / 32768)
    buf = io.BytesIO()
    # Labelled 48 kHz (Opus's only rate) so the 44.1-kHz samples pass through unresampled.
    sf.write(buf, mid, 48000, format="OGG", subtype="OPUS", compression_level=0.9)
    tmp = dst.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.rename(dst)


def pack(root: Path, out: Path, jobs: int) -> None:
    opus, chunks = out / "opus", out / "chunks"
    opus.mkdir(parents=True, exist_ok=True)
    chunks.mkdir(exist_ok=True)
    rows = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["split"] in ("train", "val")]
    with Pool(jobs) as pool:
        pool.map(encode, [(root, opus, r) for r in rows], chunksize=8)
    works: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        works[(r["split"], r["work"])].append(r)
    packed = {
        json.loads(line)["work"] for d in chunks.glob("c*") for line in (d / "manifest.jsonl").read_text().splitlines()
    }
    todo = [w for w in sorted(works) if w[1] not in packed]
    random.Random(len(packed)).shuffle(todo)
    todo.sort(key=lambda w: w[0] != "val")  # validation works first: training validates from the first chunk on
    index = len(list(chunks.glob("c*")))
    group: list[tuple[str, str]] = []
    used = 0.0
    for work in todo + [None]:
        size = sum((opus / opus_name(r)).stat().st_size for r in works[work]) if work else 0
        cap = FIRST_CHUNK_BYTES if index == 0 else CHUNK_BYTES
        if group and (work is None or used + size > cap):
            folder = chunks / f"c{index}"
            folder.mkdir()
            with open(folder / "manifest.jsonl", "w") as fh:
                for w in group:
                    for r in works[w]:
                        os.link(opus / opus_name(r), folder / opus_name(r))
                        fh.write(json.dumps(r) + "\n")
            print(f"{folder}: {sum(len(works[w]) for w in group)} stems, {used / 1e6:.1f} MB")
            index, group, used = index + 1, [], 0.0
        if work:
            group.append(work)
            used += size


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    pack(args.data, args.out, args.jobs)
