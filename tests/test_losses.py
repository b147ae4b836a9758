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
