"""Averaging each mask over shifted passes (``--shifts``): what it gains, and what it costs.

On `mss eval`'s episodes for a seed (11 by default: not the table's 7, so that the number of
shifts is not chosen on the episodes it is reported on), each method is run with 1, 2, 4 and 8
shifts and paired per episode against the same method with 1 (`mss eval`'s paired note: the
median of per-episode SDRi differences, and how often the variant wins), with the median SI-SDR
difference beside it and the separation's time per episode.

Usage:

    python -m mss_research.probes.shifts DATA [EPISODES_PER_GROUP] [SEED] [WEIGHTS]
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from mss_cli.evaluate import bss_sdr
from mss_cli.report import Case
from mss_cli.weights import load_model
from mss_research.paper_eval import fewshot, group_episodes, score
from mss_research.probes import inputs_as_they_come
from mss_research.report import paired, paired_note, pools

SHIFTS = (1, 2, 4, 8)
METHODS = {"5 positives": (5, 0, False), "5 positives + 5 suppressed negatives": (5, 5, True)}


def main(data: str, count: int = 100, seed: int = 11, weights: str | None = None) -> None:
    torch.set_num_threads(2)
    model = inputs_as_they_come(load_model(weights))  # as recorded: inputs as they came
    cases: list[Case] = []
    seconds: dict[str, float] = {}
    for group, episodes in group_episodes(data, count, seed):
        for i, e in enumerate(episodes):
            floor = bss_sdr(e.target, e.mixture)
            for method, (pos, neg, suppressed) in METHODS.items():
                for shifts in SHIFTS:
                    name = label(method, shifts)
                    started = time.perf_counter()
                    estimate = fewshot(model, e, pos, neg, suppressed, shifts)
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
                    cases.append(score(group, i, name, e, estimate, floor))
        print(f"{group}: done", flush=True)
    episodes = len({(c.group, c.episode) for c in cases})
    print(f"\n{episodes} episodes (seed {seed}); median SI-SDR difference in brackets; seconds per episode")
    for method in METHODS:
        reference = label(method, 1)
        for shifts in SHIFTS[1:]:
            name = label(method, shifts)
            for group in pools(cases):
                si = np.median(np.subtract(*paired(cases, group, name, reference, "si_sdr")))
                print(f"{paired_note(cases, group, name, reference)} [SI-SDR {si:+.2f} dB]")
        for shifts in SHIFTS:
            name = label(method, shifts)
            print(f"{name}: {seconds[name] / episodes:.3f} s per episode")


def label(method: str, shifts: int) -> str:
    return f"{method}, {shifts} shift{'s' if shifts > 1 else ''}"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    args = sys.argv[1:]
    main(args[0], *(int(a) for a in args[1:3]), *args[3:4])
