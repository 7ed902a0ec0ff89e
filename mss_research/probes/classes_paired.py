"""Per-class paired differences from evaluation.jsonl files: is a method better than another in
every class, not only in a group's median?

A group's median hides classes: the real-instrument group mixes a dozen instruments, and the
question the product asks of each is whether the model beats NMF from the same clips, and the
previous weights, on that instrument's own episodes. For each group and target class this prints
the median of per-episode SDRi differences and how often the first method wins.

Usage:

    python -m mss_research.probes.classes_paired RUN/evaluation.jsonl "METHOD" "OTHER" [EARLIER/evaluation.jsonl]

With EARLIER, OTHER is read from the earlier run (same data and seed: the same episodes), e.g.
the same method with the previous weights.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import numpy as np

from mss_cli.report import Case
from mss_research.report import load_cases


def per_class(ours: list[Case], theirs: list[Case], method: str, other: str) -> list[tuple[str, str, int, float, int]]:
    """(group, class, episodes, median paired SDRi difference, wins) per group and target class."""
    a = {(c.group, c.episode): c for c in ours if c.method == method}
    b = {(c.group, c.episode): c for c in theirs if c.method == other}
    diffs: dict[tuple[str, str], list[float]] = defaultdict(list)
    for key in sorted(a.keys() & b.keys()):
        if a[key].target_class != b[key].target_class:
            raise SystemExit(f"episode {key} differs between the runs: not the same episodes")
        diffs[key[0], a[key].target_class].append(a[key].sdri - b[key].sdri)
    return [
        (group, cls, len(d), float(np.median(d)), int((np.array(d) > 0).sum()))
        for (group, cls), d in sorted(diffs.items())
    ]


def main(argv: list[str]) -> None:
    if len(argv) not in (3, 4):
        raise SystemExit(__doc__)
    ours = load_cases(argv[0])
    theirs = load_cases(argv[3]) if len(argv) == 4 else ours
    print(f"| group | class | episodes | {argv[1]} vs {argv[2]}: paired SDRi (dB) | better in |")
    print("|---|---|---|---|---|")
    for group, cls, n, median, wins in per_class(ours, theirs, argv[1], argv[2]):
        print(f"| {group} | {cls} | {n} | {median:+.2f} | {wins} of {n} |")


if __name__ == "__main__":
    main(sys.argv[1:])
