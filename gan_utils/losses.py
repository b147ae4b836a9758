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
from typing import Union

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


def d_loss_hinge(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018).

    Scores beyond the margins (D(x) > 1, D(G(z)) < -1) cost nothing, so the critic
    stops pushing samples it already separates, unlike the unbounded Wasserstein critic.
    """
    return F.relu(1.0 - score_real).mean() + F.relu(1.0 + score_fake).mean()


def g_loss_bigan(score_real: torch.Tensor, score_fake: torch.Tensor) -> torch.Tensor:
    """Generator + encoder loss of BiGAN with flipped labels (the non-saturating form).

    D should call (G(z), z) real and (x, E(x)) fake: -E[log D(G(z), z)] - E[log(1 - D(x, E(x)))].
    """
    return _bce(score_fake, 1.0) + _bce(score_real, 0.0)


@dataclass(frozen=True)
class Objective:
    """A discriminator loss, a generator loss, and what the training loop must know about them."""

    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor | None, torch.Tensor], torch.Tensor]
    logits: bool               # True: sigmoid(score) is D's probability; False: a raw critic score
    g_uses_real: bool = False  # the generator loss reads D's scores on real inputs (BiGAN's encoder)


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective(d_loss_bce, g_loss_saturating, True),
    "non_saturating": Objective(d_loss_bce, g_loss_non_saturating, True),
    "wasserstein": Objective(critic_loss_wasserstein, g_loss_wasserstein, False),
    "hinge": Objective(d_loss_hinge, g_loss_wasserstein, False),
    "bigan": Objective(d_loss_bce, g_loss_bigan, True, g_uses_real=True),
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


def _input_grad_norms(critic: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...],
                      eps: float = 1e-12) -> torch.Tensor:
    """||grad f(inputs_i)|| per sample over every entry of every input (x, or BiGAN's (x, z)).

    The graph is kept (``create_graph=True``): a penalty built on these norms must
    send its own gradient to the critic's weights.
    """
    inputs = tuple(t.detach().requires_grad_(True) for t in inputs)
    scores = critic(*inputs)
    grads = torch.autograd.grad(scores.sum(), inputs, create_graph=True)
    sq = sum(g.flatten(1).pow(2).sum(1) for g in grads)
    return torch.sqrt(sq + eps)


RandomSource = Union[torch.Generator, Callable[[tuple[int, ...]], torch.Tensor], None]
"""A ``torch.Generator``, or ``rand(shape) -> U[0, 1) tensor`` (the training loop's, which
draws the global batch's numbers and keeps this rank's slice under torchrun)."""


def _uniform(shape: tuple[int, ...], like: torch.Tensor, source: RandomSource) -> torch.Tensor:
    if source is not None and not isinstance(source, torch.Generator):
        return source(tuple(shape)).to(device=like.device, dtype=like.dtype)
    return torch.rand(shape, device=like.device, dtype=like.dtype, generator=source)


def _check_pairs(real: tuple[torch.Tensor, ...], fake: tuple[torch.Tensor, ...]) -> None:
    if len(real) != len(fake) or any(r.shape != f.shape for r, f in zip(real, fake)):
        shapes = lambda ts: [tuple(t.shape) for t in ts]  # noqa: E731
        raise ValueError(f"real and fake inputs of the critic differ in shape: {shapes(real)} vs {shapes(fake)}")


@dataclass(frozen=True)
class WGANGP:
    """Gulrajani et al. (2017): weight * E (||grad f(x_hat)|| - 1)^2 on random interpolates.

    ``x_hat = e x + (1 - e) G(z)`` with one ``e ~ U[0, 1]`` per sample, between a real and a
    fake sample drawn *independently* (not a coupled pair, which is what Proposition 1 of the
    paper speaks about). For a multi-input critic (BiGAN's D(x, z)) every input is
    interpolated with the same ``e``.
    """

    weight: float = 10.0

    def __call__(self, critic: Callable[..., torch.Tensor], real: tuple[torch.Tensor, ...],
                 fake: tuple[torch.Tensor, ...], generator: RandomSource = None) -> torch.Tensor:
        _check_pairs(real, fake)
        e = _uniform((real[0].shape[0],), real[0], generator)
        x_hat = tuple(e.view(_per_sample_shape(r)) * r.detach() + (1 - e.view(_per_sample_shape(r))) * f.detach()
                      for r, f in zip(real, fake))
        return self.weight * (_input_grad_norms(critic, x_hat) - 1.0).pow(2).mean()


@dataclass(frozen=True)
class DRAGAN:
    """Kodali et al. (2017): the same (||grad|| - 1)^2 penalty, taken around the *real* data.

    As in the authors' code: ``x_p = x + c * std(x) * u`` with ``u ~ U[0, 1]`` per entry
    and ``std`` over the whole batch, then ``x_hat = x + a (x_p - x)`` with one
    ``a ~ U[0, 1]`` per sample. Fake samples play no part: the penalty keeps D smooth
    where the data are, which is where the authors locate the sharp gradients behind
    mode collapse.
    """

    weight: float = 10.0
    c: float = 0.5

    def __call__(self, critic: Callable[..., torch.Tensor], real: tuple[torch.Tensor, ...],
                 fake: tuple[torch.Tensor, ...], generator: RandomSource = None) -> torch.Tensor:
        x_hat = []
        for r in real:
            r = r.detach()
            u = _uniform(tuple(r.shape), r, generator)
            a = _uniform(_per_sample_shape(r), r, generator)
            x_hat.append(r + a * (self.c * r.std() * u))
        return self.weight * (_input_grad_norms(critic, tuple(x_hat)) - 1.0).pow(2).mean()


@dataclass(frozen=True)
class R1:
    """Mescheder et al. (2018): (gamma / 2) E ||grad D(x)||^2 on real data only.

    It pushes D's gradient to zero (not one) on the data, which makes the Dirac GAN's
    equilibrium locally attractive; there is no interpolation and no fake term.
    """

    gamma: float = 10.0

    def __call__(self, critic: Callable[..., torch.Tensor], real: tuple[torch.Tensor, ...],
                 fake: tuple[torch.Tensor, ...], generator: RandomSource = None) -> torch.Tensor:
        return 0.5 * self.gamma * _input_grad_norms(critic, real, eps=0.0).pow(2).mean()


Penalty = Callable[..., torch.Tensor]
"""``penalty(critic, real_inputs, fake_inputs, generator) -> scalar``; see WGANGP, DRAGAN, R1."""


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     weight: float = 10.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP's penalty for a one-input critic: ``WGANGP(weight)(critic, (real,), (fake,), generator)``.

    ``e`` is drawn per sample (shape (B, 1, 1, 1) for images), the norm is per
    sample over all pixels, and the graph is kept so the penalty's own gradient
    reaches the critic's weights.
    """
    return WGANGP(weight)(critic, (real,), (fake,), generator)
