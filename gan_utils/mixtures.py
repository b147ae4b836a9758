"""2D Gaussian mixtures with the constants of VEEGAN and PacGAN, and their mode-counting metrics.

The book's other chapters use the WGAN-GP toy data (:func:`gan_utils.data.sample_toy`:
``8gaussians`` and ``25gaussians``, rescaled to about [-2, 2]^2). To put our numbers beside the
published tables, the comparison chapter uses the mixtures of Srivastava et al. (2017, VEEGAN)
as PacGAN (Lin et al. 2018) specifies them:

* ``ring``: 8 Gaussians centred at (cos 2 pi i / 8, sin 2 pi i / 8), i = 0..7, std 0.01;
* ``grid``: 25 Gaussians centred at {-4, -2, 0, 2, 4}^2, std 0.05;

each mode with equal weight. (``torch.linspace(0, 2 pi, 8)`` would give 7 distinct modes,
since its first and last angle coincide; the centres here use ``arange(8) * 2 pi / 8``.)

Metrics of :func:`mode_metrics` (VEEGAN section 5.1, PacGAN section 4): a generated point is
*high quality* if it lies within 3 standard deviations of its nearest centre; a mode is
*captured* if it is the nearest centre of at least one high-quality point. The reverse KL is
``KL(p_gen || uniform) = sum_j p_j log(p_j K)`` over the K modes, where ``p`` is the histogram
of the high-quality points over their nearest centres, normalised to sum to 1 (natural log,
terms with p_j = 0 contribute 0). It is 0 for a perfectly balanced generator, log K for one
that puts every high-quality point on one mode, and NaN when no point is of high quality (the
histogram is then undefined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import check_choice, check_int, check_positive, check_seed

MIXTURES: tuple[str, ...] = ("ring", "grid")
MIXTURE_STD: dict[str, float] = {"ring": 0.01, "grid": 0.05}
QUALITY_STDS = 3.0      # a point within 3 std of its nearest centre is of high quality


def mixture_centers(name: str) -> torch.Tensor:
    """The K centres of a mixture, shape (K, 2), float32: 8 for ``ring``, 25 for ``grid``."""
    check_choice("mixture", name, MIXTURES)
    if name == "ring":
        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)   # not linspace(0, 2 pi, 8)
        return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1).float()
    axis = torch.arange(-4.0, 5.0, 2.0)
    return torch.cartesian_prod(axis, axis)


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None,
                   device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` points of the equal-weight mixture ``name``, shape (n, 2)."""
    centers = mixture_centers(name)
    n = check_int("n", n, minimum=1)
    k = torch.randint(0, len(centers), (n,), generator=generator)
    points = centers[k] + MIXTURE_STD[name] * torch.randn(n, 2, generator=generator)
    return points.to(device)


class MixtureBatches:
    """Fresh mixture samples for every batch; batch ``k`` is a pure function of ``(seed, k)``.

    Compatible with :class:`gan_utils.train.Batches` (``batch(k) -> (x,)``, ``batch_size``),
    like :class:`gan_utils.data.ToyBatches`, which serves the WGAN-GP-scaled variants.
    """

    def __init__(self, name: str, batch_size: int, seed: int = 0, device: str | torch.device = "cpu") -> None:
        check_choice("mixture", name, MIXTURES)
        self.name, self.device = name, device
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.seed = check_seed("seed", seed)

    def batch(self, k: int) -> tuple[torch.Tensor]:
        if type(k) is not int or k < 0:
            check_int("batch index k", k, minimum=0)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
        return (sample_mixture(self.name, self.batch_size, g, self.device),)


@dataclass(frozen=True)
class ModeMetrics:
    """Mode counts of a set of 2D points against a mixture's centres."""

    modes: int              # modes captured (of n_modes)
    n_modes: int
    high_quality: float     # share of points within 3 std of their nearest centre, in [0, 1]
    reverse_kl: float       # KL(histogram of high-quality points over modes || uniform); NaN if none
    counts: tuple[int, ...]  # high-quality points per mode


def nearest_centres(points: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the nearest centre, distance to it) for every point."""
    d = torch.cdist(points.double(), centers.double())
    dist, idx = d.min(dim=1)
    return idx, dist


def mode_metrics(points: torch.Tensor, name: str | None = None, *, centers: torch.Tensor | None = None,
                 std: float | None = None) -> ModeMetrics:
    """Modes captured, share of high-quality points and reverse KL (module docstring) of ``points``.

    Give a mixture ``name`` (``ring`` or ``grid``), or ``centers`` (K, 2) and ``std`` directly.
    """
    if name is not None:
        centers, std = mixture_centers(name), MIXTURE_STD[name]
    if centers is None or std is None:
        raise ValueError("give a mixture name ('ring' or 'grid'), or both centers and std")
    check_positive("std", std)
    if not isinstance(points, torch.Tensor) or points.dim() != 2 or points.shape[1] != centers.shape[1] \
            or len(points) == 0:
        raise ValueError(f"points must be a non-empty tensor of shape (N, {centers.shape[1]}), got "
                         f"{tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__}")
    points = points.detach().cpu()
    if not bool(torch.isfinite(points).all()):
        raise ValueError("points hold NaN or infinite values; the generator diverged")
    idx, dist = nearest_centres(points, centers.cpu())
    good = dist <= QUALITY_STDS * std
    counts = torch.bincount(idx[good], minlength=len(centers))
    n_good = int(counts.sum())
    if n_good:
        p = counts.double() / n_good
        nz = p > 0
        kl = float((p[nz] * (p[nz] * len(centers)).log()).sum())
    else:
        kl = float("nan")
    return ModeMetrics(modes=int((counts > 0).sum()), n_modes=len(centers), high_quality=n_good / len(points),
                       reverse_kl=kl, counts=tuple(int(c) for c in counts))
