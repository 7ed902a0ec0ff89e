"""The research evaluation's report: paired comparisons of methods on the same episodes, and of
this run against an earlier one (``--against``), added to the product's table (``mss_cli.report``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from mss_cli.errors import UsageError
from mss_cli.report import Case, table
from mss_cli.report import save as save_table

# Pairs of methods (method, other) whose paired difference a table states under its medians.
Comparisons = Sequence[tuple[str, str]]


METRICS = {"sdri": "SDRi", "si_sdr": "SI-SDR", "sdr": "SDR"}


def paired(
    cases: list[Case], group: str | None, method: str, other: str, metric: str = "sdri"
) -> tuple[np.ndarray, np.ndarray]:
    """``metric`` of ``method`` and of ``other`` on the episodes of ``group`` (of every group, pooled,
    when None) that both have, in the same order: the material every paired figure is made of."""

    def values(name: str) -> dict[tuple[str, int], float]:
        return {
            (c.group, c.episode): getattr(c, metric) for c in cases if c.method == name and group in (None, c.group)
        }

    ours, theirs = values(method), values(other)
    both = sorted(ours.keys() & theirs.keys())
    return np.array([ours[k] for k in both]), np.array([theirs[k] for k in both])


def pools(cases: list[Case]) -> list[str | None]:
    """The groups of ``cases`` to pair on: each, then all of them pooled (None) where there are several,
    since a sub-decibel difference that 100 episodes of one group cannot resolve may show over 300."""
    groups = list(dict.fromkeys(c.group for c in cases))
    return [*groups, None] if len(groups) > 1 else groups


def paired_note(cases: list[Case], group: str | None, method: str, other: str, metric: str = "sdri") -> str:
    """``method`` against ``other`` on the episodes of ``group`` (every group's, pooled, when None)
    that both have.

    Two medians over 30 episodes move by a decibel or two with the draw; the median of per-episode
    differences, and how often one wins, compare the two on the same material. Where ``method``
    covers only some episodes (the class-conditioned baseline knows only its training classes),
    ``other`` is scored on exactly those.
    """
    ours, theirs = paired(cases, group, method, other, metric)
    if not len(ours):
        return ""
    every = len({(c.group, c.episode) for c in cases if group in (None, c.group)})
    where = f"all {len(ours)} episodes" if len(ours) == every else f"the {len(ours)} of {every} episodes it covers"
    diffs = ours - theirs
    return (
        f"{group or 'all groups'}, {method} vs {other}, on {where}: median {METRICS[metric]} {np.median(ours):+.2f} vs "
        f"{np.median(theirs):+.2f} dB; paired difference {np.median(diffs):+.2f} dB (median), "
        f"{method} better in {int((diffs > 0).sum())} of {len(ours)}."
    )


def load_cases(path: str | Path) -> list[Case]:
    """An earlier run's ``evaluation.jsonl`` (or the folder holding it)."""
    path = Path(path)
    path = path / "evaluation.jsonl" if path.is_dir() else path
    try:
        return [Case(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not an evaluation.jsonl of mss eval ({exc})") from None


def against(cases: list[Case], earlier: list[Case], label: str) -> str:
    """Markdown: each method of this run against the same method of an earlier run, paired per
    episode (``paired_note``), e.g. two weights files evaluated with the same data and seed.

    The episodes must be the same: where both runs have an episode, its target class must agree
    (another dataset or seed gives other episodes, and pairing them would be meaningless).
    """
    theirs = {(c.group, c.episode): c.target_class for c in earlier}
    if any(theirs.get((c.group, c.episode), c.target_class) != c.target_class for c in cases):
        raise UsageError(f"{label}: its episodes are not this run's (another dataset or --seed?)")
    both = [replace(c, method=f"{c.method} (this run)") for c in cases] + [
        replace(c, method=f"{c.method} ({label})") for c in earlier
    ]
    methods = [m for m in dict.fromkeys(c.method for c in cases) if not m.startswith("mixture")]
    notes = [paired_note(both, g, f"{m} (this run)", f"{m} ({label})") for m in methods for g in pools(cases)]
    lines = [n for n in notes if n] or [f"No episode and method in common with {label}."]
    return "\n".join(f"- {n}" for n in lines) + "\n"


def comparison_notes(cases: list[Case], comparisons: Comparisons) -> list[str]:
    """The ``comparisons``, paired in each group and over all of them (``pools``), group by group."""
    return [paired_note(cases, g, m, other) for g in pools(cases) for m, other in comparisons]


def save(
    cases: list[Case],
    out_dir: str | Path,
    command: str,
    earlier: tuple[str, list[Case]] | None = None,
    comparisons: Comparisons = (),
    setting: str = "",
) -> str:
    """``mss_cli.report.save`` with the ``comparisons`` under the table and, given an ``earlier``
    run's cases, this run against it. An earlier run whose episodes are not this run's is refused
    (``UsageError``) after this run's own results are written: they took minutes."""
    md = table(cases, comparison_notes(cases, comparisons), setting)
    refused: UsageError | None = None
    if earlier is not None:
        try:
            md += f"\n## Against {earlier[0]}\n\n" + against(cases, earlier[1], earlier[0])
        except UsageError as exc:
            refused = exc
    md = save_table(cases, out_dir, command, md)
    if refused is not None:
        raise UsageError(f"{refused}; this run's results are saved in {out_dir} without the comparison")
    return md
