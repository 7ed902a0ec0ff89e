"""On the GPU machine: decode the carried chunk (.dev/chunk) into an mss dataset at /tmp/DATA.

Stems become int16 stereo .npy (the mid channel twice, so the sampler's left/right/mid choice
still works) and each work gets its works/WORK.json, which is what mss reads. Resumable.
"""

from __future__ import annotations

import json
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

from mss_research.data.render import write_work_rows
from mss_research.gpu.pack import opus_name

SRC, DST = Path(".dev/chunk"), Path("/tmp/DATA")


def decode(row: dict) -> dict:
    dst = DST / row["path"]
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        mid, _ = sf.read(SRC / opus_name(row), dtype="float32")
        pcm = np.clip(np.round(mid * 32768), -32768, 32767).astype(np.int16)
        tmp = dst.with_name(dst.name + ".tmp.npy")
        np.save(tmp, np.stack([pcm, pcm], 1))
        tmp.rename(dst)
    return row


def main() -> None:
    rows = [json.loads(line) for line in (SRC / "manifest.jsonl").read_text().splitlines()]
    with Pool(16) as pool:
        done = pool.map(decode, rows)
    by_work: dict[str, list[dict]] = {}
    for r in done:
        by_work.setdefault(r["work"], []).append(r)
    for work, stems in by_work.items():  # written last: a work appears only once its stems are there
        write_work_rows(DST, work, stems)
    print(f"decoded {len(done)} stems; dataset now {len(list((DST / 'works').glob('*.json')))} works", flush=True)


if __name__ == "__main__":
    main()
