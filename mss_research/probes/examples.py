"""How much do the example clips steer a few-shot model, and would better ones help?

On `mss eval`'s episodes (seed 7), each variant is compared per episode with the model given the
episode's first 5 positive clips (`mss eval`'s paired note: the median of per-episode SDRi
differences, and how often the variant wins):

- "wrong class": 5 positives of another class (the next episode's whose target class differs).
  A large loss means the separator follows its examples; a small one, that it mostly separates
  whatever is prominent.
- "target as example": the episode's own clean target as the only example (windows of it). It
  bounds what better example clips could give this separator.
- "self-conditioning": a second pass whose positive embedding is half the 5 clips' mean and half
  the first pass's estimate (a refinement that costs one more pass).

Usage:

    python -m mss_research.probes.examples DATA WEIGHTS [EPISODES]
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from mss_cli.conditioning import WINDOW_SECONDS
from mss_cli.evaluate import bss_sdr
from mss_cli.report import Case
from mss_cli.weights import load_model
from mss_research.paper_eval import group_episodes, score, separate_episode
from mss_research.probes import inputs_as_they_come
from mss_research.report import paired_note


def windows(signal: np.ndarray, length: int) -> torch.Tensor:
    """Consecutive whole windows of a mono signal (an episode is longer than one)."""
    return torch.from_numpy(np.stack([signal[i : i + length] for i in range(0, len(signal) - length + 1, length)]))


def main(data: str, weights: str, count: int = 100) -> None:
    torch.set_num_threads(2)
    model = inputs_as_they_come(load_model(weights))  # as recorded: inputs as they came
    length = int(WINDOW_SECONDS * model.config.sample_rate)

    def vector(*examples: torch.Tensor) -> torch.Tensor:
        """Each argument a set of windows; the positive embedding is the mean of the sets' means."""
        with torch.inference_mode():
            rows = torch.stack([model.embed_windows(w).mean(0) for w in examples])
            return model.conditioning(rows[None])[0]

    cases: list[Case] = []
    for group, episodes in group_episodes(data, count, 7):
        for i, e in enumerate(episodes):
            other = next(o for o in episodes[i + 1 :] + episodes[:i] if o.target_class != e.target_class)
            clips = torch.from_numpy(e.positives[:5])
            first = separate_episode(model, vector(clips), e)
            estimates = {
                "5 positives": first,
                "wrong class": separate_episode(model, vector(torch.from_numpy(other.positives[:5])), e),
                "target as example": separate_episode(model, vector(windows(e.target, length)), e),
                "self-conditioning": separate_episode(model, vector(clips, windows(first, length)), e),
            }
            floor = bss_sdr(e.target, e.mixture)
            cases += [score(group, i, name, e, x, floor) for name, x in estimates.items()]
        for name in ("wrong class", "target as example", "self-conditioning"):
            print(paired_note(cases, group, name, "5 positives"), flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
