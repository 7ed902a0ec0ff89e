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
    """The unit mean embedding of an estimate, cut into clip-length windows as the clips were."""
    size = int(EXAMPLE_SECONDS * model.config.sample_rate)
    windows = np.stack([estimate[i : i + size] for i in range(0, len(estimate) - size + 1, size)])
    return torch.nn.functional.normalize(embed(model, windows).mean(0), dim=-1)


def measures(model, episode, pos, neg, floor: float, ours, theirs, index: int) -> dict[str, float]:
    """The clips' likeness, and each candidate's SDR improvement and cosines to both sides' clips."""
    like = torch.nn.functional.normalize(pos.mean(0), dim=-1)
    unlike = torch.nn.functional.normalize(neg.mean(0), dim=-1)
    row = {"likeness": clip_likeness(pos, neg)}
    for name, estimate in (("net", ours), ("nmf", theirs), ("half", 0.5 * ours + 0.5 * theirs)):
        vector = heard(model, estimate)
        row[name] = bss_sdr(episode.target, estimate) - floor
        row[f"{name} like"] = float(vector @ like)
        row[f"{name} unlike"] = float(vector @ unlike)
    return row


def main(argv: list[str] | None = None) -> None:
    gate_rows(__doc__, argv, measures)


if __name__ == "__main__":
    main()
