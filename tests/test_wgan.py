"""WGAN and WGAN-GP details that public implementations get wrong, checked against closed forms.

* the gradient penalty for a linear critic f(x) = w.x is lambda (||w|| - 1)^2 exactly;
* for f(x) = 1/2 ||x||^2 (gradient x) it is lambda mean_i (||x_hat_i|| - 1)^2 with the norm per
  sample over ALL pixels and one epsilon per sample;
* the penalty keeps its graph (create_graph=True): its gradient reaches the critic's weights and
  equals the hand-derived one;
* weight clipping holds after every critic step; the fake batch is detached in the critic step;
* the critic schedule (n_critic, WGAN's bursts) counts critic steps, each on a fresh real batch;
* the Wasserstein estimate in the history has the right sign.

The DCGAN / critic architectures (no BatchNorm in the WGAN-GP critic) are tested in test_dcgan.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_utils import data, losses, models, train


class LinearCritic(nn.Module):
    """f(x) = w . flatten(x) + b, so grad_x f = w for every sample."""

    def __init__(self, w: torch.Tensor, b: float = 0.3) -> None:
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b


class HalfSquaredNorm(nn.Module):
    """f(x) = 1/2 ||x||^2 per sample, so grad_x f(x) = x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


def _batch(shape: tuple[int, ...], seed: int, scale: float = 0.3) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm_w", [0.25, 1.0, 3.0])
def test_penalty_of_linear_critic_is_exact(norm_w: float) -> None:
    shape = (5, 3, 4, 4)
    direction = torch.randn(48, generator=torch.Generator().manual_seed(1))
    critic = LinearCritic(norm_w * direction / direction.norm())
    gp = losses.gradient_penalty(critic, _batch(shape, 2), _batch(shape, 3), weight=10.0,
                                 generator=torch.Generator().manual_seed(4))
    assert gp.item() == pytest.approx(10.0 * (norm_w - 1.0) ** 2, rel=1e-6, abs=1e-9)


def test_penalty_norm_is_per_sample_over_all_pixels() -> None:
    """f = 1/2 ||x||^2 has gradient x_hat at x_hat: rebuild x_hat from the same generator seed."""
    shape = (6, 3, 4, 5)
    real, fake = _batch(shape, 10), _batch(shape, 11, scale=0.1)
    gp = losses.gradient_penalty(HalfSquaredNorm(), real, fake, weight=10.0,
                                 generator=torch.Generator().manual_seed(7))
    eps = torch.rand((6, 1, 1, 1), generator=torch.Generator().manual_seed(7))  # one per sample
    x_hat = eps * real + (1 - eps) * fake
    expected = 10.0 * (x_hat.flatten(1).norm(dim=1) - 1.0).pow(2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-6)
    # The usual bugs give visibly different numbers on this batch, so the check above can fail:
    over_channels = 10.0 * (x_hat.norm(dim=1) - 1.0).pow(2).mean()       # norm over dim 1 only
    over_batch = 10.0 * (x_hat.norm() - 1.0) ** 2                        # one norm for the batch
    eps_pixel = torch.rand(shape, generator=torch.Generator().manual_seed(7))
    per_pixel = 10.0 * ((eps_pixel * real + (1 - eps_pixel) * fake).flatten(1).norm(dim=1) - 1).pow(2).mean()
    for wrong in (over_channels, over_batch, per_pixel):
        assert abs(wrong.item() - expected.item()) > 1e-2 * expected.item()


def test_penalty_gradient_reaches_critic_weights() -> None:
    """d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||: only with create_graph=True."""
    w = torch.tensor([3.0, 0.0, 4.0, 0.0]).repeat(3) / math.sqrt(3)   # ||w|| = 5
    critic = LinearCritic(w)
    g_lin = nn.Linear(2, 12)                     # a stand-in generator; it must get no gradient
    fake = g_lin(torch.randn(4, 2)).view(4, 3, 2, 2)
    real = _batch((4, 3, 2, 2), 5)
    gp = losses.gradient_penalty(critic, real, fake, weight=10.0)
    gp.backward()
    norm = w.norm()
    assert torch.allclose(critic.w.grad, 2 * 10.0 * (norm - 1) * w / norm, rtol=1e-5)
    assert critic.b.grad is None or critic.b.grad.abs().item() == 0.0  # f's gradient ignores b
    assert all(p.grad is None for p in g_lin.parameters())


def test_penalty_stays_finite_where_the_gradient_is_zero() -> None:
    """||0|| has an infinite derivative; the eps inside the square root keeps the backward finite."""
    critic = LinearCritic(torch.zeros(12))
    gp = losses.gradient_penalty(critic, _batch((4, 3, 2, 2), 1), _batch((4, 3, 2, 2), 2), weight=10.0)
    gp.backward()
    assert gp.item() == pytest.approx(10.0, rel=1e-5)
    assert torch.isfinite(critic.w.grad).all()


def test_critic_grad_norms_are_per_sample() -> None:
    x = _batch((3, 2, 3, 3), 9)
    norms = losses.critic_grad_norms(HalfSquaredNorm(), x)
    assert torch.allclose(norms, x.flatten(1).norm(dim=1), rtol=1e-6)


# ---------------------------------------------------------------- the loop, WGAN-configured

def _toy_setup(n_critic: int = 1, **kw) -> train.GANSetup:
    torch.manual_seed(0)
    kw.setdefault("loss", "wasserstein")
    kw.setdefault("schedule", train.CriticSchedule(n_critic))
    return train.GANSetup(models.ToyMLP(2, 2, hidden=16, depth=2), models.ToyMLP(2, 1, hidden=16, depth=2),
                          latent_dim=2, **kw)


class SpyBatches:
    """Toy batches that remember which batch indices the loop asked for."""

    def __init__(self) -> None:
        self.inner = data.ToyBatches("8gaussians", batch_size=32, seed=0)
        self.batch_size = 32
        self.asked: list[int] = []

    def batch(self, k: int) -> tuple[torch.Tensor]:
        self.asked.append(k)
        return self.inner.batch(k)


def _cfg(steps: int) -> train.TrainConfig:
    return train.TrainConfig(steps=steps, progress=False, log_every=1)


def test_weight_clipping_holds_after_every_critic_step() -> None:
    c = 0.01
    setup = _toy_setup(n_critic=3, clip_value=c, opt_d=train.OptimizerSpec("rmsprop", 5e-2),
                       opt_g=train.OptimizerSpec("rmsprop", 5e-2))
    seen: list[float] = []
    setup.discriminator.register_forward_pre_hook(
        lambda mod, args: seen.append(max(p.abs().max().item() for p in mod.parameters())))
    train.train(setup, SpyBatches(), _cfg(4))
    assert seen[0] > c                       # the initial weights are not clipped ...
    assert max(seen[2:]) <= c                # ... but every call after the first critic step is
    assert all(p.abs().max().item() <= c for p in setup.discriminator.parameters())
    unclipped = _toy_setup(n_critic=3, opt_d=train.OptimizerSpec("rmsprop", 5e-2))
    train.train(unclipped, SpyBatches(), _cfg(4))
    assert max(p.abs().max().item() for p in unclipped.discriminator.parameters()) > c


@pytest.mark.parametrize("kw", [
    {"loss": "non_saturating"},
    {"loss": "wasserstein", "clip_value": 0.01},
    {"loss": "wasserstein", "penalty": losses.WGANGP(10.0)},
], ids=["bce", "wgan", "wgan-gp"])
def test_fake_batch_is_detached_in_the_critic_step(kw: dict) -> None:
    """G's parameters receive a gradient once per generator step and never from a critic loss."""
    setup = _toy_setup(n_critic=3, **kw)
    counts = {id(p): 0 for p in setup.generator.parameters()}
    for p in setup.generator.parameters():
        p.register_hook(lambda g, key=id(p): counts.__setitem__(key, counts[key] + 1))
    result = train.train(setup, SpyBatches(), _cfg(2))
    assert result.critic_steps == 6
    assert set(counts.values()) == {2}       # 2 generator steps; 8 if the fakes carried a graph


def test_n_critic_counts_critic_steps_on_fresh_batches() -> None:
    spy = SpyBatches()
    setup = _toy_setup(n_critic=5)
    calls = []
    setup.discriminator.register_forward_pre_hook(lambda mod, args: calls.append(1))
    result = train.train(setup, spy, _cfg(4))
    assert result.critic_steps == 4 * 5
    assert spy.asked == list(range(20))      # one fresh real batch per critic step
    assert len(calls) == 2 * 20 + 4          # real + fake per critic step, one per generator step


def test_critic_bursts_at_the_start_and_periodically() -> None:
    """WGAN's official schedule: `burst` critic steps for t < burst_first and whenever t % burst_every == 0."""
    spy = SpyBatches()
    setup = _toy_setup(schedule=train.CriticSchedule(5, burst=7, burst_first=2, burst_every=4))
    result = train.train(setup, spy, _cfg(9))
    # generator steps 0, 1 (first two), 4 and 8 (every 4th) burst; 2, 3, 5, 6, 7 do not
    assert [setup.schedule(t) for t in range(9)] == [7, 7, 5, 5, 7, 5, 5, 5, 7]
    assert result.critic_steps == 4 * 7 + 5 * 5
    assert spy.asked == list(range(4 * 7 + 5 * 5))
    official = train.CriticSchedule(5, burst=100, burst_first=25, burst_every=500)
    assert [official(t) for t in (0, 24, 25, 499, 500, 501, 1000)] == [100, 100, 5, 5, 100, 5, 100]


def test_history_holds_the_wasserstein_estimate_with_the_right_sign() -> None:
    setup = _toy_setup(n_critic=2, clip_value=0.05)
    result = train.train(setup, SpyBatches(), _cfg(5))
    h = result.history
    assert torch.allclose(torch.tensor(h["d_real"] - h["d_fake"]), -torch.tensor(h["loss_d"]), atol=1e-6)
