"""Can the encoder, hearing each estimate, say whether NMF's mask should be mixed in?
(`experiments/nmf-output-check.md`)

    python -m mss_research.probes.nmf_check WEIGHTS DATA... --group GROUP [--episodes 100] [--seed 11] -o FILE

The default mixes NMF in where the ``--like`` and ``--not`` clips sound alike
(`experiments/nmf-gate.md`). That gate misses the targets where NMF wins although the clips do not
sound alike (the real cellos, the held-out marimba). This probe asks the separated audio instead of
the clips: the example encoder embeds each candidate estimate (the network's, NMF's, and the two
mixed at half) and the cosine to the positive clips' mean embedding, and to the negatives', says how
much each sounds like what was asked for. One JSON line per episode goes to ``-o``: each
candidate's SDR improvement and its two cosines, and the clips' likeness the default's gate reads.
"""

from __future__ import annotations

import numpy as np
import torch

from mss_cli.conditioning import clip_likeness
from mss_cli.evaluate import bss_sdr
from mss_research.paper_eval import EXAMPLE_SECONDS
from mss_research.probes.adapt import embed
from mss_research.probes.nmf_mix import gate_rows


def heard(model, estimate: np.ndarray) -> torch.Tensor:
    """Embeddings of an estimate cut into clip-length windows, as the clips were embedded."""
    size = int(EXAMPLE_SECONDS * model.config.sample_rate)
    return embed(model, np.stack([estimate[i : i + size] for i in range(0, len(estimate) - size + 1, size)]))


def measures(model, episode, pos, neg, floor: float, ours, theirs, index: int) -> dict[str, float]:
    """The clips' likeness, and each candidate's SDR improvement and the likeness of its windows to
    both sides' clips (``clip_likeness``, the cosine of mean embeddings the default's gate reads)."""
    row = {"likeness": clip_likeness(pos, neg)}
    for name, estimate in (("net", ours), ("nmf", theirs), ("half", 0.5 * ours + 0.5 * theirs)):
        windows = heard(model, estimate)
        row[name] = bss_sdr(episode.target, estimate) - floor
        row[f"{name} like"] = clip_likeness(windows, pos)
        row[f"{name} unlike"] = clip_likeness(windows, neg)
    return row


def main(argv: list[str] | None = None) -> None:
    gate_rows(__doc__, argv, measures)


if __name__ == "__main__":
    main()
