"""Where do the unseen classes' example sets land in a few-shot model's conditioning space?

For each weights file: the conditioning vector of 5 positives (no negatives) for each of
`mss eval`'s episodes (seen and unseen groups, seed 7), centred on the seen episodes' mean;
seen-class centroids; then how many seen episodes lie nearest their own class's centroid, and for
each unseen class the nearest seen centroid (cosine). A model that maps an unseen instrument onto
a seen one separates it as that one. Usage:

    python -m mss_research.probes.conditioning DATA WEIGHTS [WEIGHTS ...]
"""

from __future__ import annotations

import collections
import sys

import torch
from torch.nn.functional import normalize

from mss_cli.weights import load_model
from mss_research.paper_eval import episodes_for


def conditioning_vectors(model, episodes) -> dict[str, list[torch.Tensor]]:
    """Target class -> one conditioning vector per episode (5 positives, no negatives)."""
    out: dict[str, list[torch.Tensor]] = collections.defaultdict(list)
    with torch.inference_mode():
        for e in episodes:
            pos = model.embed_windows(torch.from_numpy(e.positives[:5]))[None]
            out[e.target_class].append(model.conditioning(pos)[0])
    return out


def main(data: str, weights: list[str]) -> None:
    torch.set_num_threads(2)
    seen_eps, unseen_eps = (episodes_for(data, group, 100, 7) for group in ("seen", "unseen"))
    for path in weights:
        model = load_model(path, fuse=False)
        seen, unseen = conditioning_vectors(model, seen_eps), conditioning_vectors(model, unseen_eps)
        mean = torch.stack([v for vs in seen.values() for v in vs]).mean(0)
        seen = {c: [normalize(v - mean, dim=0) for v in vs] for c, vs in seen.items()}
        unseen = {c: [normalize(v - mean, dim=0) for v in vs] for c, vs in unseen.items()}
        names = sorted(seen)
        centroids = torch.stack([normalize(torch.stack(seen[c]).mean(0), dim=0) for c in names])
        own = sum(names[int((v @ centroids.T).argmax())] == c for c, vs in seen.items() for v in vs)
        print(f"{path}: seen episodes nearest their own class's centroid: {own}/{sum(map(len, seen.values()))}")
        for c, vs in sorted(unseen.items()):
            sims = normalize(torch.stack(vs).mean(0), dim=0) @ centroids.T
            votes = collections.Counter(names[int(i)] for i in (torch.stack(vs) @ centroids.T).argmax(1))
            print(
                f"  {c:10s} {len(vs):3d} episodes: nearest seen centroid {names[int(sims.argmax())]} "
                f"(cos {float(sims.max()):.3f}); per episode {dict(votes.most_common(2))}"
            )


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    main(sys.argv[1], sys.argv[2:])
