"""Where the few-shot model trails the class-conditioned baseline, class by class.

The table's groups mix classes in proportion to their stems, and a handful of episodes per class
(`mss eval`'s table by target class) only points at suspects. For each named seen class this draws
COUNT episodes of that class alone (validation works, `mss eval`'s 6-s segments and 3-s clips, 5
positives), and reports the two models' median SDRi and their paired difference. Then, for every
class, it embeds 20 single example clips and says which class centroid each clip lies nearest to
(cosine): how well one clip already tells the encoder which instrument is meant.

Usage:

    python -m mss_research.probes.classes DATA CLASS[,CLASS...] [COUNT]
"""

from __future__ import annotations

import sys
from collections import Counter

import numpy as np
import torch

from mss_cli.audio import SAMPLE_RATE
from mss_cli.evaluate import bss_sdr
from mss_cli.report import Case
from mss_cli.weights import BASELINE_WEIGHTS, load_model, shipped_weights
from mss_research.data.episodes import EpisodeSampler
from mss_research.paper_eval import BASELINE, EXAMPLE_SECONDS, FEWSHOT_5, SEGMENT_SECONDS, classcond, fewshot, score
from mss_research.probes import inputs_as_they_come
from mss_research.report import paired_note


def paired_by_class(data: str, classes: list[str], count: int, few, base) -> None:
    sampler = EpisodeSampler(
        data,
        "val",
        int(SEGMENT_SECONDS * SAMPLE_RATE),
        int(EXAMPLE_SECONDS * SAMPLE_RATE),
        max_positives=5,
        targets="seen",
        seed=3,
    )
    every = list(sampler.targets)
    cases: list[Case] = []
    for cls in classes:
        sampler.targets = [t for t in every if t[1]["class"] == cls]
        if not sampler.targets:
            print(f"{cls}: no validation stems of this seen class")
            continue
        for index in range(count):
            e = sampler.sample(positives=5, negatives=0)
            floor = bss_sdr(e.target, e.mixture)
            cases += [
                score(cls, index, FEWSHOT_5, e, fewshot(few, e, 5, 0), floor),
                score(cls, index, BASELINE, e, classcond(base, e), floor),
            ]
        print(f"{len(sampler.targets)} stems: " + paired_note(cases, cls, FEWSHOT_5, BASELINE), flush=True)


def nearest_centroids(data: str, classes: list[str], model) -> None:
    sampler = EpisodeSampler(
        data, "val", int(SEGMENT_SECONDS * SAMPLE_RATE), int(EXAMPLE_SECONDS * SAMPLE_RATE), targets="all", seed=5
    )
    embedded = {}
    for cls, rows in sampler.by_class.items():
        clips, _ = sampler._examples(rows, 20)
        if clips:
            with torch.inference_mode():
                embedded[cls] = torch.nn.functional.normalize(
                    model.embed_windows(torch.from_numpy(np.stack(clips))), dim=-1
                )
    names = sorted(embedded)
    centroids = torch.stack([torch.nn.functional.normalize(embedded[c].mean(0), dim=0) for c in names])
    for cls in classes:
        nearest = Counter(names[i] for i in (embedded[cls] @ centroids.T).argmax(1).tolist())
        print(
            f"{cls}: its {len(embedded[cls])} clips lie nearest to "
            + ", ".join(f"{c} {k}" for c, k in nearest.most_common())
        )


def main(data: str, classes: str, count: int = 40) -> None:
    torch.set_num_threads(2)
    # As recorded in experiments/per-class.md: inputs as they came.
    few, base = (inputs_as_they_come(load_model(w)) for w in (None, shipped_weights(BASELINE_WEIGHTS)))
    names = classes.split(",")
    paired_by_class(data, names, count, few, base)
    nearest_centroids(data, names, few)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4]))
