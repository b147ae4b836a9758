"""Recipes build what their docstrings promise, and the loop trains every setup without a branch for it.

PacGAN-2, DRAGAN, R1 and the hinge loss are new setups: each trains here for a few
steps through the unchanged ``train()``.
"""

from __future__ import annotations

import pytest
import torch

from gan_utils import data, losses, models, recipes, train, views


def _images(n: int = 64, channels: int = 1) -> data.DeviceBatches:
    x = torch.rand(n, channels, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return data.DeviceBatches(x, batch_size=8, seed=0)


def _cfg(steps: int = 2) -> train.TrainConfig:
    return train.TrainConfig(steps=steps, progress=False, log_every=1)


SMALL = {
    "vanilla": dict(hidden=(32, 32, 32)),
    "dcgan": dict(width=8),
    "wgan": dict(width=8, schedule=train.CriticSchedule(2)),
    "wgan_gp": dict(width=8, n_critic=2),
    "bigan": dict(hidden=(32, 32)),
}


@pytest.mark.parametrize("name", list(recipes.RECIPES))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_recipe_trains_one_step(name: str, channels: int) -> None:
    torch.manual_seed(0)
    setup = recipes.RECIPES[name](channels=channels, **SMALL[name])
    before = [p.detach().clone() for m in setup.modules().values() for p in m.parameters()]
    result = train.train(setup, _images(channels=channels), _cfg(1))
    after = [p.detach() for m in setup.modules().values() for p in m.parameters()]
    assert result.steps_done == 1
    assert result.snapshots[-1][1].shape[1:] == (channels, 28, 28)
    assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.numel() > 1 and a.requires_grad)


def test_recipe_settings_match_their_docstrings() -> None:
    d = recipes.dcgan()
    assert (d.loss, d.reuse_fake, d.latent_dim, d.noise) == ("non_saturating", True, 100, "normal")
    assert (d.opt_d.name, d.opt_d.lr, d.opt_d.betas) == ("adam", 2e-4, (0.5, 0.999))
    assert isinstance(d.discriminator.net[3], torch.nn.BatchNorm2d)
    # D mirrors G: G's feature maps are 4w (7x7) then 2w (14x14); D's are 2w (14x14) then 4w (7x7)
    g_convs = [m for m in d.generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    d_convs = [m for m in d.discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in g_convs] == [256, 128, 1]
    assert [c.out_channels for c in d_convs] == [128, 256, 1]
    w = recipes.wgan()
    assert isinstance(w.discriminator, models.ConvCritic)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in w.discriminator.modules()) == 2
    assert (w.loss, w.clip_value, w.opt_d.name, w.opt_d.lr, w.opt_g.name) == ("wasserstein", 0.01, "rmsprop", 5e-5, "rmsprop")
    # 100 critic steps for the first 25 generator steps and at every 500th, else 5
    assert [w.schedule(t) for t in (0, 24, 25, 26, 499, 500, 501, 1000)] == [100, 100, 5, 5, 5, 100, 5, 100]
    gp = recipes.wgan_gp()
    assert gp.penalty == losses.WGANGP(10.0) and gp.schedule == train.CriticSchedule(5)
    assert (gp.opt_d.lr, gp.opt_d.betas, gp.clip_value) == (1e-4, (0.5, 0.9), None)
    assert isinstance(gp.discriminator, models.ConvCritic)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in gp.discriminator.modules())
    b = recipes.bigan()
    assert isinstance(b.view, views.JointView) and b.encoder is b.view.encoder
    assert (b.loss, b.noise, b.latent_dim) == ("bigan", "uniform", 50)
    assert set(b.modules()) == {"generator", "encoder", "discriminator"}
    v = recipes.vanilla_mlp()
    assert (v.loss, v.reuse_fake, v.latent_dim, v.opt_g.lr) == ("non_saturating", False, 128, 2e-4)
    # keyword overrides reach the networks
    assert recipes.dcgan(latent_dim=64, width=16).generator.net[0].in_channels == 64
    assert recipes.vanilla_mlp(lr=1e-3).opt_d.lr == 1e-3


def test_toy_decay_applies_to_both_players_and_only_when_asked() -> None:
    decayed = recipes.toy_mlp("wgan_gp", decay_from=0.5, lr=1e-3)
    assert decayed.opt_g.decay_from == decayed.opt_d.decay_from == 0.5
    assert decayed.opt_d.lr_at(75, 100) == pytest.approx(5e-4)
    assert recipes.toy_mlp("wgan_gp").opt_g.decay_from is None


@pytest.mark.parametrize("kind", recipes.TOY_KINDS)
def test_toy_kinds_train_through_the_same_loop(kind: str) -> None:
    torch.manual_seed(0)
    setup = recipes.toy_mlp(kind, hidden=16, depth=2)
    result = train.train(setup, data.ToyBatches("8gaussians", batch_size=16, seed=0), _cfg(3))
    k = 5 if kind in ("wgan", "wgan_gp") else 1
    assert result.critic_steps == 3 * k
    penalised = kind in ("wgan_gp", "dragan", "r1")
    assert (result.history["penalty"] > 0).all() == penalised
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in result.history.values())


def test_pacgan_discriminator_sees_packed_pairs() -> None:
    torch.manual_seed(0)
    setup = recipes.toy_mlp("vanilla", hidden=16, depth=2, packing=2)
    shapes: list[tuple[int, ...]] = []
    setup.discriminator.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    train.train(setup, data.ToyBatches("8gaussians", batch_size=16, seed=0), _cfg(2))
    assert set(shapes) == {(8, 4)}                  # 16 samples of R^2 -> 8 packed rows of R^4
    img = recipes.dcgan(width=8, packing=2)
    assert img.discriminator.net[0].in_channels == 2
    result = train.train(img, _images(), _cfg(1))
    assert result.steps_done == 1
    with pytest.raises(ValueError, match="divisible by the packing degree m=2"):
        train.train(recipes.toy_mlp("vanilla", packing=2), data.ToyBatches("8gaussians", 15), _cfg(1))


def test_pack_keeps_consecutive_samples_together() -> None:
    x = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2)
    p = views.pack(x, 2)
    assert p.shape == (2, 6, 2, 2)
    assert torch.equal(p[1, :3], x[2]) and torch.equal(p[1, 3:], x[3])
    v = torch.arange(8.0).view(4, 2)
    assert torch.equal(views.pack(v, 2), torch.tensor([[0.0, 1, 2, 3], [4, 5, 6, 7]]))


def test_unknown_toy_kind_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="'vanilla', 'wgan'"):
        recipes.toy_mlp("lsgan")
