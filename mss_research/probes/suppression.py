"""How to use the negatives' own masks: the variants `take_out` in the model was chosen among.

Each negative clip is embedded as a positive (the positives as its negatives) and separated in its
own right; its mask says where the unwanted instrument is. This scores ways of taking that out of
the target's mask, on `mss eval`'s episodes for a seed other than the table's (7), so that the
choice is not made on the episodes it is reported on: median SDRi and SI-SDR differences, paired
per episode against 5 positives alone, and how often each variant wins, over all groups. The last
rows group the negative clips (by their true instrument, or by embedding similarity as
`unwanted_vectors` does) so that one pass serves each group: the passes saved, and the cost.

Usage:

    python -m mss_research.probes.suppression DATA [EPISODES_PER_GROUP] [SEED]    # 100 and 11: 15 min
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from mss_cli.conditioning import similar_groups, unwanted_vectors
from mss_cli.evaluate import bss_sdr
from mss_cli.report import Case, paired
from mss_cli.weights import load_model
from mss_research.paper_eval import group_episodes, score

Masks = dict[str, Tensor]
VARIANTS: dict[str, Callable[[Masks], Tensor]] = {
    "5 positives (the reference)": lambda m: m["pos"],
    "5 positives + 5 negatives, conditioning only (the paper)": lambda m: m["posneg"],
    "the same, mask^1.5 (sharper; no use of the negatives' masks)": lambda m: m["posneg"] ** 1.5,
    "x (1 - max)": lambda m: m["posneg"] * (1 - m["max"]),
    "x (1 - max)^0.25": lambda m: m["posneg"] * (1 - m["max"]) ** 0.25,
    "x (1 - max)^0.5": lambda m: m["posneg"] * (1 - m["max"]).sqrt(),
    "x (1 - max)^1.5": lambda m: m["posneg"] * (1 - m["max"]) ** 1.5,
    "x (1 - max)^2": lambda m: m["posneg"] * (1 - m["max"]) ** 2,
    "x (1 - max/2)": lambda m: m["posneg"] * (1 - m["max"] / 2),
    "x (1 - max^2)": lambda m: m["posneg"] * (1 - m["max"] ** 2),
    "x prod(1 - each) (probabilistic OR)": lambda m: m["posneg"] * m["none"],
    "x prod(1 - each)^0.5": lambda m: m["posneg"] * m["none"].sqrt(),
    "x (1 - one mask for the negatives' mean embedding) (one pass)": lambda m: m["posneg"] * (1 - m["mean"]),
    "ratio: mask^2 / (mask + max)": lambda m: m["posneg"] ** 2 / (m["posneg"] + m["max"] + 1e-6),
    "min(mask, 1 - max)": lambda m: torch.minimum(m["posneg"], 1 - m["max"]),
    "5 positives only, x (1 - max)^0.5": lambda m: m["pos"] * (1 - m["max"]).sqrt(),
    "x (1 - max)^0.5, one pass per true instrument": lambda m: m["posneg"] * (1 - m["max by class"]).sqrt(),
    **{
        f"x (1 - max)^0.5, one pass per group at cosine {t}{' (shipped)' if t == 0.9 else ''}": (
            lambda m, t=t: m["posneg"] * (1 - m[f"max at {t}"]).sqrt()
        )
        for t in (0.95, 0.9, 0.8)
    },
}
GROUPINGS = {"max by class": None, "max at 0.95": 0.95, "max at 0.9": 0.9, "max at 0.8": 0.8}


def masks(model, episode, passes: dict[str, list[int]]) -> tuple[Tensor, Masks]:
    """The mixture's STFT and every mask the variants combine (float32, unfused model); ``passes``
    collects how many suppression passes each grouping took."""
    with torch.inference_mode():
        pos = model.embed_windows(torch.from_numpy(episode.positives[:5]))
        neg = model.embed_windows(torch.from_numpy(episode.negatives[:5]))
        spec, feats = model.features(torch.from_numpy(episode.mixture)[None])
        mask = lambda cond: model.mask(feats, cond)  # noqa: E731
        each = torch.cat([mask(c[None]) for c in model.unwanted_conditioning(pos, neg)])
        found = {
            "pos": mask(model.conditioning(pos[None])),
            "posneg": mask(model.conditioning(pos[None], neg[None])),
            "mean": mask(unwanted_vectors(model, pos, neg, [list(range(len(neg)))])),
            "max": each.amax(0, keepdim=True),
            "none": (1 - each).prod(0, keepdim=True),
        }
        for key, threshold in GROUPINGS.items():
            if threshold is None:
                classes = episode.negative_classes
                groups = [[i for i, c in enumerate(classes) if c == name] for name in dict.fromkeys(classes)]
            else:
                groups = similar_groups(neg, threshold)
            found[key] = torch.cat([mask(c[None]) for c in unwanted_vectors(model, pos, neg, groups)]).amax(
                0, keepdim=True
            )
            passes.setdefault(key, []).append(len(groups))
    return spec, found


def main(data: str, count: int = 100, seed: int = 11) -> None:
    torch.set_num_threads(2)
    model = load_model(fuse=False).eval()
    cases: list[Case] = []
    passes: dict[str, list[int]] = {}
    for group, episodes in group_episodes(data, count, seed):
        for index, episode in enumerate(episodes):
            floor = bss_sdr(episode.target, episode.mixture)
            spec, found = masks(model, episode, passes)
            for name, combine in VARIANTS.items():
                estimate = model.apply_mask(spec, combine(found), len(episode.mixture))[0].numpy()
                cases.append(score(group, index, name, episode, estimate, floor))
        print(f"{group}: {count} episodes", flush=True)
    reference, episodes = next(iter(VARIANTS)), len({(c.group, c.episode) for c in cases})
    print(f"\nPaired against 5 positives alone over {episodes} episodes (seed {seed}): median difference (wins)\n")
    print("| variant | SDRi | SI-SDR |\n|---|---|---|")
    for name in list(VARIANTS)[1:]:
        sdri, si = (np.subtract(*paired(cases, None, name, reference, metric)) for metric in ("sdri", "si_sdr"))
        print(
            f"| {name} | {np.median(sdri):+.2f} dB ({(sdri > 0).sum()}) | {np.median(si):+.2f} dB ({(si > 0).sum()}) |"
        )
    print(
        "\nSuppression passes per episode (5 negatives; one per clip without grouping), and what grouping costs"
        " against one pass per clip (mean SDRi difference):"
    )
    for counts, name in zip(passes.values(), list(VARIANTS)[-len(GROUPINGS) :]):
        cost = np.mean(np.subtract(*paired(cases, None, name, "x (1 - max)^0.5")))
        print(f"- {name}: {np.mean(counts):.2f} passes, {cost:+.3f} dB")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
