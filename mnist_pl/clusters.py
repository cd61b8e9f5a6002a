"""k-means clustering of points on the device: what sorts an unconditional GAN's training images
into clusters of look-alikes."""

from __future__ import annotations

import torch


def kmeans(points: torch.Tensor, k: int, seed: int = 0, iterations: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means clustering of `points` [N, D]: (centres [k, D], each point's cluster [N]).

    Seeded k-means++ start (each next centre drawn in proportion to the squared distance to the
    nearest one so far), then Lloyd's iterations; a cluster left empty keeps its centre.
    """
    generator = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(points), (1,), generator=generator).item()
    centres = points[pick:pick + 1]
    # squared distance to the nearest centre so far, updated with each new centre only (not all
    # of them again: k passes over the points instead of k^2 / 2)
    nearest = torch.full((len(points),), float("inf"), device=points.device)
    for _ in range(1, k):
        nearest = torch.minimum(nearest, torch.cdist(points, centres[-1:]).squeeze(1).square())
        pick = torch.multinomial(nearest.cpu() / nearest.sum().cpu(), 1, generator=generator).item()
        centres = torch.cat([centres, points[pick:pick + 1]])
    for _ in range(iterations):
        assigned = nearest_centre(points, centres)
        sums = torch.zeros_like(centres).index_add_(0, assigned, points)
        counts = torch.bincount(assigned, minlength=k)
        centres = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None].to(sums), centres)
    return centres, nearest_centre(points, centres)


def nearest_centre(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """The index of each point's nearest centre (Euclidean): points [N, D], centres [k, D] -> [N]."""
    return torch.cdist(points, centres).argmin(1)
