"""Evaluation reports: scored cases, the Markdown table, per-episode pairing, the chart.

``mss eval --folder`` (a user's own cases) and the research package's paper table
(``mss_research.paper_eval``) write their results through here, so both read alike and an
earlier run's ``evaluation.jsonl`` pairs with a new one (``--against``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mss_cli.errors import UsageError
from mss_cli.files import refuse_to_replace, write_atomically


@dataclass
class Case:
    """One method's estimate of one episode's (or case's) target, scored."""

    group: str
    episode: int
    method: str
    target_class: str
    sdr: float
    si_sdr: float
    sdri: float


# Pairs of methods (method, other) whose paired difference a table states under its medians.
Comparisons = Sequence[tuple[str, str]]


def table(cases: list[Case], comparisons: Comparisons = (), setting: str = "") -> str:
    """Markdown: median SDRi / SDR / SI-SDR per method and group, then the ``comparisons``, paired
    in each group and over all of them (``pools``), group by group; ``setting`` describes the material."""
    groups = list(dict.fromkeys(c.group for c in cases))
    methods = list(dict.fromkeys(c.method for c in cases))
    head = "| method | " + " | ".join(f"{g}: SDRi / SDR / SI-SDR (dB)" for g in groups) + " |"
    lines = [head, "|---" * (len(groups) + 1) + "|"]
    for m in methods:
        cells = []
        for g in groups:
            sel = [c for c in cases if c.method == m and c.group == g]
            cells.append(
                f"{np.median([c.sdri for c in sel]):+.2f} / {np.median([c.sdr for c in sel]):.2f} / "
                f"{np.median([c.si_sdr for c in sel]):.2f}"
                if sel
                else "n/a"
            )
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{g}: {sum(c.group == g and c.method == methods[0] for c in cases)} cases" for g in groups)
    notes = [f"Medians over fixed episodes ({counts})" + (f"; {setting}." if setting else ".")]
    notes += [paired_note(cases, g, m, other) for g in pools(cases) for m, other in comparisons]
    return (
        "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" if i else n for i, n in enumerate(x for x in notes if x)) + "\n"
    )


def by_class(cases: list[Case]) -> str:
    """Markdown: median SDRi per group and target class, for each method. A group's median hides
    which instruments fail: in the shipped model's table, drums and bass make up a third of the seen
    group at +11-12 dB, while quiet cellos and pads sit below 0 dB."""
    groups = list(dict.fromkeys(c.group for c in cases))
    methods = [m for m in dict.fromkeys(c.method for c in cases) if not m.startswith("mixture")]
    sdri: dict[tuple[str, str, str], list[float]] = {}
    episodes: dict[tuple[str, str], set[int]] = {}
    for c in cases:
        sdri.setdefault((c.group, c.target_class, c.method), []).append(c.sdri)
        episodes.setdefault((c.group, c.target_class), set()).add(c.episode)
    lines = ["| group | class | episodes | " + " | ".join(methods) + " |", "|---" * (len(methods) + 3) + "|"]
    for group, cls in sorted(episodes, key=lambda key: (groups.index(key[0]), key[1])):
        cells = [f"{np.median(sdri[group, cls, m]):+.2f}" if (group, cls, m) in sdri else "n/a" for m in methods]
        lines.append(f"| {group} | {cls} | {len(episodes[group, cls])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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


def chart(cases: list[Case], path: str | Path) -> None:
    from mss_cli.extras import require

    matplotlib = require("matplotlib", "eval")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(c.group for c in cases))
    methods = list(dict.fromkeys(c.method for c in cases))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        values = [np.median([c.sdri for c in cases if c.method == m and c.group == g] or [np.nan]) for m in methods]
        ax.bar(np.arange(len(methods)) + i * width, values, width, label=g)
    ax.set_xticks(np.arange(len(methods)) + width * (len(groups) - 1) / 2, methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("median SDRi (dB)")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")  # the path may be a temporary name
    plt.close(fig)


OUTPUTS = ("evaluation.md", "evaluation.jsonl", "evaluation.png")


def check_outputs(out_dir: str | Path, overwrite: bool) -> None:
    """Refuse, before an evaluation's slow part, to replace an earlier run's results unasked."""
    if not overwrite:
        for name in OUTPUTS:
            refuse_to_replace(Path(out_dir) / name, "result of an earlier evaluation", usage=True)


def save(
    cases: list[Case],
    out_dir: str | Path,
    command: str,
    earlier: tuple[str, list[Case]] | None = None,
    comparisons: Comparisons = (),
    setting: str = "",
) -> str:
    """Write the table (with the comparison against an ``earlier`` run's cases, if given, and the
    table by target class), every case and the chart, each under a temporary name first; returns
    the Markdown printed on stdout (all but the table by class). An earlier run whose episodes are
    not this run's is refused (``UsageError``) after this run's own results are written."""
    md = table(cases, comparisons, setting)
    refused: UsageError | None = None
    if earlier is not None:
        try:
            md += f"\n## Against {earlier[0]}\n\n" + against(cases, earlier[1], earlier[0])
        except UsageError as exc:  # the run's own results are still written: they took minutes
            refused = exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_class = (
        f"\n## By target class\n\nMedian SDRi (dB) of each method, per group and target class.\n\n{by_class(cases)}"
    )
    text = {
        "evaluation.md": f"# Evaluation\n\nProduced by `{command}`.\n\n{md}{per_class}",
        "evaluation.jsonl": "".join(json.dumps(c.__dict__) + "\n" for c in cases),
    }
    for name, content in text.items():
        write_atomically(out / name, lambda tmp, content=content: tmp.write_text(content))
    write_atomically(out / "evaluation.png", lambda tmp: chart(cases, tmp))
    if refused is not None:
        raise UsageError(f"{refused}; this run's results are saved in {out} without the comparison")
    return md
