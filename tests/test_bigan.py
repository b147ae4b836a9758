"""BiGAN through the one training loop: what the joint discriminator sees, who gets gradients when.

The objective is min_{G,E} max_D E_x[log D(x, E(x))] + E_z[log(1 - D(G(z), z))]
(Donahue et al., 2017). The loop must

* show D the pairs (x, E(x)) and (G(z), z) -- image first, code second, right shapes, z ~ U(-1, 1);
* keep E and G out of the discriminator step (no gradient reaches them there);
* give E its gradient in the generator step, through D(x, E(x)), with the labels flipped;
* update G and E with ONE optimiser, D with another.

A spy wraps D's forward, and gradient hooks on every parameter record *when* each network
receives a gradient, counted in D calls since the start of training.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_utils import data, losses, models, train, views

LATENT, SIDE, BATCH = 3, 4, 16
PIXELS = SIDE * SIDE


class SpyDiscriminator(nn.Module):
    """A JointDiscriminator that logs every call: which pair it was, shapes, gradient flags, scores.

    E and G are kept in a tuple (not registered as submodules), so the loop's
    discriminator optimiser never sees their parameters.
    """

    def __init__(self, inner: nn.Module, encoder: nn.Module, generator: nn.Module, log: list) -> None:
        super().__init__()
        self.inner = inner
        self._others = (encoder, generator)
        self.log = log

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        encoder, generator = self._others
        with torch.no_grad():  # E and G have no BatchNorm or dropout here: recomputing them is exact
            if torch.allclose(z, encoder(x), atol=1e-6):
                kind = "real"
            elif torch.allclose(x, generator(z), atol=1e-6):
                kind = "fake"
            else:
                kind = "unknown"
        out = self.inner(x, z)
        self.log.append({"kind": kind, "x_shape": tuple(x.shape), "z_shape": tuple(z.shape),
                         "x_grad": x.requires_grad, "z_grad": z.requires_grad,
                         "z_min": float(z.detach().min()), "z_max": float(z.detach().max()), "scores": out.detach().clone()})
        return out


class RecordingSpec(train.OptimizerSpec):
    """An optimiser spec that remembers the parameters it was built with."""

    def build(self, params):
        self.built_with = list(params)
        self.optimizer = super().build(self.built_with)
        return self.optimizer


def _bigan(n_critic: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    G = models.MLPGenerator(LATENT, hidden=(12, 12), out_shape=(1, SIDE, SIDE))    # no BatchNorm
    E = models.BiGANEncoder(LATENT, hidden=(12,), in_features=PIXELS)              # one layer: no BatchNorm
    log: list = []
    D = SpyDiscriminator(models.JointDiscriminator(LATENT, hidden=(12, 12), in_features=PIXELS), E, G, log)
    setup = train.GANSetup(G, D, LATENT, loss="bigan", view=views.JointView(E), noise="uniform",
                           schedule=train.CriticSchedule(n_critic),
                           opt_g=RecordingSpec("adam", 1e-3), opt_d=RecordingSpec("adam", 1e-3))
    images = torch.rand(96, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    batches = data.DeviceBatches(images, batch_size=BATCH, seed=0)
    return setup, batches, log


def _attach_grad_hooks(setup: train.GANSetup, log: list, events: list) -> None:
    for name, module in setup.modules().items():
        for p in module.parameters():
            p.register_hook(lambda g, name=name: events.append((name, len(log), float(g.abs().sum()))))


@pytest.mark.parametrize("n_critic", [1, 2])
def test_discriminator_sees_the_right_pairs(n_critic: int) -> None:
    setup, batches, log = _bigan(n_critic)
    steps = 3
    train.train(setup, batches, train.TrainConfig(steps=steps, progress=False, log_every=1))
    per_step = 2 * n_critic + 2
    assert len(log) == steps * per_step
    for s in range(steps):
        calls = log[s * per_step:(s + 1) * per_step]
        d_calls, g_calls = calls[:2 * n_critic], calls[2 * n_critic:]
        # discriminator step(s): (x, E(x)) then (G(z), z), neither side carrying a graph
        assert [c["kind"] for c in d_calls] == ["real", "fake"] * n_critic
        assert all(not c["x_grad"] and not c["z_grad"] for c in d_calls)
        # generator + encoder step: (G(z), z) with G(z) differentiable, (x, E(x)) with E(x) differentiable
        assert [c["kind"] for c in g_calls] == ["fake", "real"]
        fake_g, real_g = g_calls
        assert fake_g["x_grad"] and not fake_g["z_grad"]
        assert real_g["z_grad"] and not real_g["x_grad"]
        for c in calls:
            assert c["x_shape"] == (BATCH, 1, SIDE, SIDE) and c["z_shape"] == (BATCH, LATENT)
            if c["kind"] == "fake":  # prior samples: uniform on [-1, 1] (a normal z would leave it)
                assert -1.0 <= c["z_min"] and c["z_max"] <= 1.0


def test_losses_use_the_bigan_labels() -> None:
    """History losses equal the BCE losses rebuilt from the logged scores, labels as in the paper."""
    setup, batches, log = _bigan()
    result = train.train(setup, batches, train.TrainConfig(steps=2, progress=False, log_every=1))
    bce = F.binary_cross_entropy_with_logits
    for s in range(2):
        real_d, fake_d, fake_g, real_g = (c["scores"] for c in log[4 * s:4 * s + 4])
        # D: (x, E(x)) is real (label 1), (G(z), z) is fake (label 0)
        loss_d = bce(real_d, torch.ones_like(real_d)) + bce(fake_d, torch.zeros_like(fake_d))
        # G and E, labels flipped: (G(z), z) should be called real, (x, E(x)) fake
        loss_g = bce(fake_g, torch.ones_like(fake_g)) + bce(real_g, torch.zeros_like(real_g))
        assert result.history["loss_d"][s] == pytest.approx(loss_d.item(), rel=1e-5)
        assert result.history["loss_g"][s] == pytest.approx(loss_g.item(), rel=1e-5)
        assert result.history["d_real"][s] == pytest.approx(torch.sigmoid(real_d).mean().item(), rel=1e-5)
    # and the loss functions themselves are the ones the loop used
    assert losses.get_objective("bigan").g_loss is losses.g_loss_bigan


@pytest.mark.parametrize("n_critic", [1, 2])
def test_encoder_gets_gradients_in_the_generator_step_only(n_critic: int) -> None:
    setup, batches, log = _bigan(n_critic)
    events: list = []
    _attach_grad_hooks(setup, log, events)
    steps = 3
    train.train(setup, batches, train.TrainConfig(steps=steps, progress=False, log_every=1))
    per_step = 2 * n_critic + 2
    n_params = {name: len(list(m.parameters())) for name, m in setup.modules().items()}
    by_net: dict[str, list[int]] = {name: [] for name in n_params}
    for name, calls_so_far, _ in events:
        by_net[name].append(calls_so_far)
    # E and G: gradients arrive only after both D calls of the generator step, once per step
    for name in ("encoder", "generator"):
        assert len(by_net[name]) == steps * n_params[name]
        assert all(c % per_step == 0 and c > 0 for c in by_net[name]), name
    # D: gradients only right after each discriminator step's two calls, never in the G step
    assert len(by_net["discriminator"]) == steps * n_critic * n_params["discriminator"]
    allowed = {2 * (i + 1) for i in range(n_critic)}
    assert all(c % per_step in allowed for c in by_net["discriminator"])
    # the encoder's gradient is not zero: it really learns through D(x, E(x))
    assert sum(g for name, _, g in events if name == "encoder") > 0


def test_generator_and_encoder_share_one_optimiser() -> None:
    setup, batches, _ = _bigan()
    G, D, E = setup.generator, setup.discriminator, setup.encoder
    before = {n: [p.detach().clone() for p in m.parameters()] for n, m in setup.modules().items()}
    train.train(setup, batches, train.TrainConfig(steps=1, progress=False))
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(setup.opt_g.built_with) == ids(G.parameters()) | ids(E.parameters())
    assert ids(setup.opt_d.built_with) == ids(D.parameters())
    assert len(setup.opt_g.optimizer.param_groups) == 1  # one optimiser, one step for both
    # after one step every network moved (Adam moves every parameter with a gradient)
    for name, module in setup.modules().items():
        assert all(not torch.equal(a, b.detach()) for a, b in zip(before[name], module.parameters())), name


def test_bigan_modules_shapes() -> None:
    E = models.BiGANEncoder(50, hidden=(32, 32))
    D = models.JointDiscriminator(50, hidden=(32, 32))
    G = models.MLPGenerator(latent_dim=50, hidden=(32, 32), batchnorm=True)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    z = E(x)
    assert z.shape == (5, 50)
    assert G(z).shape == (5, 1, 28, 28)
    assert D(x, z).shape == (5,) and D(G(z), z).shape == (5,)
    # the code is squashed into the prior's support (-1, 1); net() is the pre-activation
    E.eval()
    assert torch.allclose(E(x), torch.tanh(E.net(x)))
    assert E(100 * x).abs().max() <= 1.0  # (float32 tanh rounds to exactly 1 far out)
    raw = models.BiGANEncoder(50, hidden=(32, 32), bounded=False)
    raw.load_state_dict(E.state_dict())
    raw.eval()
    assert torch.equal(raw(x), E.net(x))
