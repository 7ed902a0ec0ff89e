"""Evaluation reports: scored cases, the Markdown table, the table by class, the chart.

``mss eval --folder`` (a user's own cases) and the research package's paper table
(``mss_research.report`` adds its paired comparisons) write their results through here, so both
read alike.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def table(cases: list[Case], notes: Sequence[str] = (), setting: str = "") -> str:
    """Markdown: median SDRi / SDR / SI-SDR per method and group, then ``notes`` (one item each;
    empty ones left out); ``setting`` describes the material."""
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
    notes = [f"Medians over fixed episodes ({counts})" + (f"; {setting}." if setting else "."), *notes]
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


def save(cases: list[Case], out_dir: str | Path, command: str, md: str | None = None) -> str:
    """Write the table (``md``, or ``table(cases)``) and the table by target class, every case and
    the chart, each under a temporary name first; returns the Markdown printed on stdout (all but
    the table by class)."""
    md = table(cases) if md is None else md
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
    return md
