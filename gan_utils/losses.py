"""GAN objectives, written on raw discriminator scores (logits).

``log D = log sigmoid(s) = -softplus(-s)`` and ``log(1 - D) = -softplus(s)`` are
computed by ``binary_cross_entropy_with_logits`` without ever forming ``sigmoid(s)``,
so a confident discriminator (``|s|`` of 50 or more) gives finite losses and
gradients instead of ``log(0)``.

Every loss takes ``(score_real, score_fake)`` so the training loop can treat them
alike; generator losses that do not use the real scores ignore them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import check_choice


def _bce(scores: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(scores, torch.full_like(scores, target))


def d_loss_bce(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """-(E[log D(x)] + E[log(1 - D(G(z)))]): the discriminator maximises V(D, G)."""
    return _bce(score_real, 1.0) + _bce(score_fake, 0.0)


def g_loss_saturating(score_real: torch.Tensor | None, score_fake: torch.Tensor) -> torch.Tensor:
    """E[log(1 - D(G(z)))], the minimax generator loss; its gradient vanishes when D wins."""
    return -_bce(score_fake, 0.0)


def g_loss_non_saturating(score_real: torch.Tensor | None, score_fake: torch.Tensor) -> torch.Tensor:
    """-E[log D(G(z))]: same fixed point, strong gradients when D(G(z)) is near 0."""
    return _bce(score_fake, 1.0)


def critic_loss_wasserstein(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """E[f(G(z))] - E[f(x)]; its negative estimates W(p_data, p_g) for a 1-Lipschitz f."""
    return score_fake.mean() - score_real.mean()


def g_loss_wasserstein(score_real: torch.Tensor | None, score_fake: torch.Tensor) -> torch.Tensor:
    """-E[f(G(z))]: the generator moves its samples up the critic."""
    return -score_fake.mean()


def g_loss_bigan(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """Generator + encoder loss of BiGAN with flipped labels (the non-saturating form).

    D should call (G(z), z) real and (x, E(x)) fake: -E[log D(G(z), z)] - E[log(1 - D(x, E(x)))].
    """
    return _bce(score_fake, 1.0) + _bce(score_real, 0.0)


@dataclass(frozen=True)
class Objective:
    """A discriminator loss, a generator loss, and whether scores are probabilities (logits)."""

    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]
    logits: bool  # True: sigmoid(score) is D's probability; False: a Wasserstein critic


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(d_loss_bce, g_loss_saturating, True),
    "non_saturating": Objective(d_loss_bce, g_loss_non_saturating, True),
    "wasserstein": Objective(critic_loss_wasserstein, g_loss_wasserstein, False),
    "bigan": Objective(d_loss_bce, g_loss_bigan, True),
}


def get_objective(name: str) -> Objective:
    """Look up an objective by name; unknown names list the valid ones."""
    return OBJECTIVES[check_choice("loss", name, OBJECTIVES)]


def _per_sample_shape(x: torch.Tensor) -> tuple[int, ...]:
    return (x.shape[0],) + (1,) * (x.dim() - 1)


def critic_grad_norms(critic: nn.Module, x: torch.Tensor, *, create_graph: bool = False,
                      eps: float = 1e-12) -> torch.Tensor:
    """||grad_x f(x_i)||_2 for every sample i, taken over ALL of its entries (C, H, W).

    ``eps`` inside the square root keeps the double backward finite where a
    gradient is exactly zero (d sqrt(u)/du is infinite at 0).
    """
    x = x.detach().requires_grad_(True)
    scores = critic(x)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=create_graph)
    return torch.sqrt(grad.flatten(1).pow(2).sum(dim=1) + eps)


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     weight: float = 10.0, generator: torch.Generator | None = None,
                     eps: float = 1e-12) -> torch.Tensor:
    """WGAN-GP: weight * mean_i (||grad f(x_hat_i)|| - 1)^2, x_hat = e x + (1 - e) G(z).

    ``e`` is drawn per sample (shape (B, 1, 1, 1) for images), the norm is per
    sample over all pixels, and the graph is kept (``create_graph=True``) so the
    penalty's own gradient reaches the critic's weights.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}")
    e = torch.rand(_per_sample_shape(real), device=real.device, dtype=real.dtype, generator=generator)
    x_hat = e * real.detach() + (1 - e) * fake.detach()
    norms = critic_grad_norms(critic, x_hat, create_graph=True, eps=eps)
    return weight * (norms - 1.0).pow(2).mean()
