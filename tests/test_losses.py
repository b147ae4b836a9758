"""GAN losses against hand-computed values; all work from logits."""

from __future__ import annotations

import math

import pytest
import torch

from gan_utils import losses


def test_d_loss_bce_hand_computed() -> None:
    # D(x) = sigmoid(0) = 1/2 on both: -(log 1/2 + log 1/2) = 2 log 2
    z = torch.zeros(4)
    assert losses.d_loss_bce(z, z).item() == pytest.approx(2 * math.log(2))
    # real logit log(3) -> D = 3/4; fake logit -log(3) -> D = 1/4: -(log 3/4 + log 3/4)
    r, f = torch.full((3,), math.log(3)), torch.full((3,), -math.log(3))
    assert losses.d_loss_bce(r, f).item() == pytest.approx(-2 * math.log(0.75), rel=1e-6)


def test_generator_losses_hand_computed() -> None:
    f = torch.tensor([math.log(3)])  # D(G(z)) = 3/4
    assert losses.g_loss_saturating(None, f).item() == pytest.approx(math.log(0.25), rel=1e-6)
    assert losses.g_loss_non_saturating(None, f).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_losses_stay_finite_for_confident_discriminator() -> None:
    """sigmoid then log would give log(0) = -inf here; the logit form does not."""
    s = torch.tensor([-200.0, 200.0], requires_grad=True)
    for fn in (losses.g_loss_saturating, losses.g_loss_non_saturating):
        loss = fn(None, s)
        (grad,) = torch.autograd.grad(loss, s)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert torch.isfinite(losses.d_loss_bce(s, -s))


def test_saturating_gradient_vanishes_where_non_saturating_does_not() -> None:
    """At D(G(z)) ~ 0 (score -10) the minimax loss gives ~no gradient; the NS loss gives ~1."""
    s = torch.tensor([-10.0], requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.g_loss_saturating(None, s), s)
    (g_ns,) = torch.autograd.grad(losses.g_loss_non_saturating(None, s), s)
    assert abs(g_sat.item()) < 1e-4 and abs(g_ns.item()) > 0.99


def test_wasserstein_losses() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.5, -0.5])
    assert losses.critic_loss_wasserstein(real, fake).item() == pytest.approx(0.0 - 2.0)
    assert losses.g_loss_wasserstein(None, fake).item() == pytest.approx(0.0)


def test_bigan_loss_flips_labels() -> None:
    z = torch.zeros(2)
    assert losses.g_loss_bigan(z, z).item() == pytest.approx(2 * math.log(2))
    # encoder pair judged real with certainty -> large loss for (G, E)
    assert losses.g_loss_bigan(torch.full((2,), 20.0), torch.full((2,), 20.0)).item() > 19


def test_unknown_objective() -> None:
    with pytest.raises(ValueError, match="valid choices"):
        losses.get_objective("lsgan")


# ---------------------------------------------------------------- hinge loss and the penalties

class _Linear(torch.nn.Module):
    """f(x) = w . flatten(x) (+ v . z for a joint critic), so the input gradient is (w, v) everywhere."""

    def __init__(self, w: torch.Tensor, v: torch.Tensor | None = None) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.v = None if v is None else torch.nn.Parameter(v.clone())

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        out = x.flatten(1) @ self.w
        return out if z is None else out + z @ self.v


def _half_square(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x.flatten(1).pow(2).sum(1)   # gradient x


def test_hinge_loss_by_hand() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.3])
    # relu(1 - 2) = 0, relu(1 - 0.5) = 0.5 -> 0.25;  relu(1 - 2) = 0, relu(1 + 0.3) = 1.3 -> 0.65
    assert losses.get_objective("hinge").d_loss(real, fake).item() == pytest.approx(0.9)
    assert losses.get_objective("hinge").g_loss(None, fake).item() == pytest.approx(0.85)
    assert not losses.get_objective("hinge").logits


def test_r1_by_hand() -> None:
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])                       # ||w||^2 = 25
    x = torch.randn(5, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    assert losses.R1(10.0)(_Linear(w), (x,), (x,)).item() == pytest.approx(0.5 * 10.0 * 25.0)
    # f = 1/2 ||x||^2: gamma/2 * mean ||x_i||^2, on the REAL batch only (the fake one is ignored)
    expected = 5.0 * x.flatten(1).pow(2).sum(1).mean()
    got = losses.R1(10.0)(_half_square, (x,), (torch.full_like(x, 7.0),))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_dragan_by_hand() -> None:
    w = torch.tensor([0.6, 0.0, 0.8, 0.0]) * 3                    # ||w|| = 3
    x = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    assert losses.DRAGAN(10.0)(_Linear(w), (x,), (x,)).item() == pytest.approx(10.0 * 4.0, rel=1e-6)
    # f = 1/2 ||x||^2 has gradient x_hat: rebuild the perturbed points from the same generator
    got = losses.DRAGAN(10.0, c=0.5)(_half_square, (x,), (x * 0,), torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    u = torch.rand(x.shape, generator=g)                          # per entry, in [0, 1]
    a = torch.rand(6, 1, 1, 1, generator=g)                       # per sample
    x_hat = x + a * (0.5 * x.std() * u)
    expected = 10.0 * (x_hat.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # around the data: interpolating towards the fakes (WGAN-GP) gives another number here
    wgan_gp = losses.WGANGP(10.0)(_half_square, (x,), (x * 0,), torch.Generator().manual_seed(3))
    assert abs(wgan_gp.item() - expected.item()) > 1e-2


def test_wgan_gp_on_a_joint_critic_takes_the_norm_over_both_inputs() -> None:
    w, v = torch.tensor([1.0, 2.0, 2.0, 0.0]), torch.tensor([4.0, 0.0])   # ||(w, v)|| = sqrt(25) = 5
    x, z = torch.randn(3, 1, 2, 2), torch.randn(3, 2)
    gp = losses.WGANGP(10.0)(_Linear(w, v), (x, z), (x.flip(0), z.flip(0)))
    assert gp.item() == pytest.approx(10.0 * 16.0, rel=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        losses.WGANGP(10.0)(_Linear(w, v), (x, z), (x, z[:2]))
