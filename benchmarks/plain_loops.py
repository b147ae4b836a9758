"""Straight-line training steps, written the way pytorch/examples writes them.

The benchmark times these beside ``gan_utils.train.train`` on the *same* networks,
batches, optimisers and objective, so the ratio of the two measures what the
book's one general loop costs (or saves) against hand-written code. Nothing here
is used by the book itself.

Each ``make_step(setup)`` returns ``step(k) -> None`` that performs generator step
``k`` (with its critic steps) reading real batches from ``batches.batch(j)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from gan_utils import train

Step = Callable[[int], None]


def _ones(s: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(s)


def _zeros(s: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(s)


def _opts(setup: train.GANSetup) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    g_params = [p for m in setup.g_modules().values() for p in m.parameters()]
    return setup.opt_g.build(g_params), setup.opt_d.build(list(setup.discriminator.parameters()))


def _real_batches(batches) -> Callable[[], torch.Tensor]:
    """Successive real batches 0, 1, 2, ...: the order in which the book's loop reads them."""
    counter = itertools.count()
    return lambda: batches.batch(next(counter))[0]


def bce_step(setup: train.GANSetup, batches, device: torch.device) -> Step:
    """Vanilla GAN / DCGAN: one D step, one non-saturating G step (pytorch/examples/dcgan)."""
    G, D, nz, reuse = setup.generator, setup.discriminator, setup.latent_dim, setup.reuse_fake
    opt_g, opt_d = _opts(setup)
    next_real = _real_batches(batches)

    def step(k: int) -> None:
        x = next_real()
        z = torch.randn(x.shape[0], nz, device=device)
        if reuse:
            fake = G(z)
        else:
            with torch.no_grad():
                fake = G(z)
        opt_d.zero_grad()
        out_real, out_fake = D(x), D(fake.detach())
        err_d = (F.binary_cross_entropy_with_logits(out_real, _ones(out_real))
                 + F.binary_cross_entropy_with_logits(out_fake, _zeros(out_fake)))
        err_d.backward()
        opt_d.step()
        if not reuse:
            fake = G(torch.randn(x.shape[0], nz, device=device))
        opt_g.zero_grad()
        out = D(fake)
        err_g = F.binary_cross_entropy_with_logits(out, _ones(out))
        err_g.backward()
        opt_g.step()

    return step


def wasserstein_step(setup: train.GANSetup, batches, device: torch.device) -> Step:
    """WGAN (clipping) or WGAN-GP (penalty): n_critic critic steps, then one generator step."""
    G, D, nz = setup.generator, setup.discriminator, setup.latent_dim
    opt_g, opt_d = _opts(setup)
    c = setup.clip_value
    lam = setup.penalty.weight if setup.penalty is not None else 0.0
    next_real = _real_batches(batches)

    def step(k: int) -> None:
        for _ in range(setup.schedule(k)):
            x = next_real()
            with torch.no_grad():
                fake = G(torch.randn(x.shape[0], nz, device=device))
            opt_d.zero_grad()
            loss = D(fake).mean() - D(x).mean()
            if lam:
                e = torch.rand(x.shape[0], 1, 1, 1, device=device)
                x_hat = (e * x + (1 - e) * fake).requires_grad_(True)
                (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                loss = loss + lam * (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
            loss.backward()
            opt_d.step()
            if c is not None:
                for p in D.parameters():
                    p.data.clamp_(-c, c)
        opt_g.zero_grad()
        loss_g = -D(G(torch.randn(x.shape[0], nz, device=device))).mean()
        loss_g.backward()
        opt_g.step()

    return step


def bigan_step(setup: train.GANSetup, batches, device: torch.device) -> Step:
    """BiGAN: D on (x, E(x)) vs (G(z), z); then G and E together with flipped labels."""
    G, D, E, nz = setup.generator, setup.discriminator, setup.encoder, setup.latent_dim
    opt_g, opt_d = _opts(setup)
    next_real = _real_batches(batches)

    def step(k: int) -> None:
        x = next_real()
        z = torch.rand(x.shape[0], nz, device=device) * 2 - 1
        with torch.no_grad():
            fake, code = G(z), E(x)
        opt_d.zero_grad()
        s_real, s_fake = D(x, code), D(fake, z)
        err_d = (F.binary_cross_entropy_with_logits(s_real, _ones(s_real))
                 + F.binary_cross_entropy_with_logits(s_fake, _zeros(s_fake)))
        err_d.backward()
        opt_d.step()
        z = torch.rand(x.shape[0], nz, device=device) * 2 - 1
        opt_g.zero_grad()
        s_fake, s_real = D(G(z), z), D(x, E(x))
        err_g = (F.binary_cross_entropy_with_logits(s_fake, _ones(s_fake))
                 + F.binary_cross_entropy_with_logits(s_real, _zeros(s_real)))
        err_g.backward()
        opt_g.step()

    return step


PLAIN_STEPS: dict[str, Callable[..., Step]] = {
    "vanilla": bce_step, "dcgan": bce_step, "wgan": wasserstein_step, "wgan_gp": wasserstein_step,
    "bigan": bigan_step,
}
