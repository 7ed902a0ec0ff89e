"""Does a part render the same on every fresh SFZ player? (`experiments/sfizz-in-memory.md`)

    python -m mss_research.probes.sfz_repeat LIBRARIES [--class piano] [--renders 5]

Plays one 24-note part (seed 3: 0.3-1.5 s notes at velocities 50-110, middle keys) on the class's
first training program, each time on a new ``SfzPlayer`` in one process, and prints each render's
RMS against the loudest and its largest sample difference from the first. A note cut short where
a streamed sample file ran out shows as a lower RMS.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from mss_research.data.instruments import SfzPlayer, available
from mss_research.data.scores import Note


def part(keys: list[int], rng: random.Random) -> list[Note]:
    middle = [k for k in keys if 48 <= k <= 84] or keys
    notes, start = [], 0.2
    for _ in range(24):
        length = rng.choice([0.3, 0.6, 1.0, 1.5])
        notes.append(Note(start, length, rng.choice(middle), rng.randint(50, 110)))
        start += length * rng.choice([0.5, 1.0])
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("libraries")
    parser.add_argument("--class", dest="cls", default="piano")
    parser.add_argument("--renders", type=int, default=5)
    args = parser.parse_args()
    lib, program = next(e for e in available(args.libraries, held_out=False)[args.cls] if e[0].kind == "sfz")
    notes = part(SfzPlayer(args.libraries).keys(lib, program), random.Random(3))
    renders = []
    for _ in range(args.renders):
        began = time.perf_counter()
        audio = SfzPlayer(args.libraries).render(notes, lib, program)
        renders.append((audio, time.perf_counter() - began))
    loudest = max(float(np.sqrt(np.mean(a**2))) for a, _ in renders)
    print(f"{args.cls}: {lib.name} {program}")
    for audio, seconds in renders:
        rms = float(np.sqrt(np.mean(audio**2)))
        diff = float(np.abs(audio - renders[0][0]).max())
        print(f"rms/loudest {rms / loudest:.4f}  max |difference from the first| {diff:.4f}  {seconds:.2f} s")


if __name__ == "__main__":
    main()
