"""Stacked MNIST (Metz et al. 2017; VEEGAN, PacGAN): 1,000 modes from three real digits per image.

Each real image stacks three *independently* drawn real MNIST digits as its three channels,
so its mode is the triple of their classes, one of 10^3 = 1,000 equally likely triples. The
digits come from whatever :func:`gan_utils.data.load_mnist` returns (the 60,000 training
images online, the 10,000 official test images offline); nothing is synthesised.

A generated image's mode is the triple of classes the feature network
(:mod:`gan_utils.evaluate`) gives its three channels, each classified on its own; channel 0 is
the hundreds digit: ``mode = 100 c0 + 10 c1 + c2``. :func:`stacked_mode_metrics` reports the
modes covered (distinct triples, of 1,000) and ``KL(p_gen || uniform) = sum_t p_t log(1000 p_t)``
over the triples (natural log, empty triples contribute 0), as in VEEGAN's Table 2 and PacGAN's
Table 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import check_int, check_seed

N_CHANNELS = 3
N_MODES = 10 ** N_CHANNELS


def stack_indices(n_images: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 3) indices into a set of ``n_images`` digits, every entry drawn independently and uniformly."""
    n_images = check_int("n_images", n_images, minimum=1)
    n = check_int("n", n, minimum=1)
    return torch.randint(0, n_images, (n, N_CHANNELS), generator=generator)


def stack_images(images: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, 28, 28) and indices (n, 3) -> stacked images (n, 3, 28, 28); channel c is ``images[idx[:, c]]``."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)}")
    if idx.dim() != 2 or idx.shape[1] != N_CHANNELS:
        raise ValueError(f"idx must have shape (n, {N_CHANNELS}), got {tuple(idx.shape)}")
    idx = idx.to(images.device)
    return images[idx.reshape(-1), 0].reshape(len(idx), N_CHANNELS, *images.shape[2:])


def stack_labels(labels: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The (n, 3) class triples of the stacked images built from ``idx``."""
    return labels.to(idx.device)[idx]


def sample_stacked(images: torch.Tensor, n: int, generator: torch.Generator | None = None,
                   labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` real stacked images and, if ``labels`` are given, their (n, 3) class triples."""
    idx = stack_indices(len(images), n, generator)
    return stack_images(images, idx), (stack_labels(labels, idx) if labels is not None else None)


class StackedMNISTBatches:
    """Fresh real stacked images for every batch; batch ``k`` is a pure function of ``(seed, k)``.

    Compatible with :class:`gan_utils.train.Batches`. The digits are moved to the device once;
    a batch is an index draw on the CPU (seeded by ``seed`` and ``k``) and one gather.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        if images.dim() != 4 or images.shape[1] != 1:
            raise ValueError(f"images must be single-channel digits of shape (N, 1, H, W), got {tuple(images.shape)}")
        self.images = images.to(device) if device is not None else images
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.seed = check_seed("seed", seed)
        self.name = "stacked_mnist"

    def indices(self, k: int) -> torch.Tensor:
        if type(k) is not int or k < 0:
            check_int("batch index k", k, minimum=0)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
        return stack_indices(len(self.images), self.batch_size, g)

    def batch(self, k: int) -> tuple[torch.Tensor]:
        return (stack_images(self.images, self.indices(k)),)


def triple_modes(labels: torch.Tensor) -> torch.Tensor:
    """(N, 3) class triples -> (N,) mode indices ``100 c0 + 10 c1 + c2`` in [0, 1000)."""
    if labels.dim() != 2 or labels.shape[1] != N_CHANNELS:
        raise ValueError(f"labels must have shape (N, {N_CHANNELS}), got {tuple(labels.shape)}")
    labels = labels.long()
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) > 9):
        raise ValueError("labels must be digit classes 0-9")
    return labels[:, 0] * 100 + labels[:, 1] * 10 + labels[:, 2]


@dataclass(frozen=True)
class StackedModeMetrics:
    modes: int          # distinct triples among the samples, of 1,000
    kl: float           # KL(generated triple histogram || uniform over 1,000), natural log
    n: int              # samples


def stacked_mode_metrics(labels: torch.Tensor) -> StackedModeMetrics:
    """Modes covered and KL to the uniform distribution over the 1,000 triples (module docstring)."""
    modes = triple_modes(labels)
    if len(modes) == 0:
        raise ValueError("labels is empty; classify at least one stacked image")
    counts = torch.bincount(modes, minlength=N_MODES).double()
    p = counts / counts.sum()
    nz = p > 0
    kl = float((p[nz] * (p[nz] * N_MODES).log()).sum())
    return StackedModeMetrics(modes=int(nz.sum()), kl=kl, n=len(modes))
