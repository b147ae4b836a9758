"""DCGAN networks at 28 x 28: shapes, the Radford et al. guidelines, the N(0, 0.02) init, and a
WGAN-GP critic without BatchNorm (each sample scored independently of its batch)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_utils import models


def _batch(shape: tuple[int, ...], seed: int, scale: float = 0.3) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_dcgan_shapes_and_range() -> None:
    G, D = models.DCGANGenerator(latent_dim=100, width=8), models.DCGANDiscriminator(width=8)
    z = torch.randn(5, 100)
    x = G(z)
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1
    G.eval()
    assert torch.equal(G(z.view(5, 100, 1, 1)), G(z))  # (B, 100) and (B, 100, 1, 1) are the same noise
    assert D(x).shape == (5,)


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not isinstance(m, (nn.Sequential,)) and m is not model]


def test_dcgan_follows_the_guidelines() -> None:
    G, D = models.DCGANGenerator(width=8), models.DCGANDiscriminator(width=8, norm="batch")
    g_layers, d_layers = _layers(G), _layers(D)
    # no fully connected hidden layers, no pooling
    for layers in (g_layers, d_layers):
        assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in layers)
    # G: transposed convolutions, BatchNorm + ReLU inside, Tanh output with no BatchNorm after the last conv
    assert all(isinstance(m, nn.ConvTranspose2d) for m in g_layers if isinstance(m, nn.modules.conv._ConvNd))
    last_conv = max(i for i, m in enumerate(g_layers) if isinstance(m, nn.ConvTranspose2d))
    assert [type(m) for m in g_layers[last_conv + 1:]] == [nn.Tanh]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g_layers) == 2
    assert any(isinstance(m, nn.ReLU) for m in g_layers) and not any(isinstance(m, nn.LeakyReLU) for m in g_layers)
    # D: strided convolutions, LeakyReLU(0.2), nothing normalises the input layer, no sigmoid
    assert isinstance(d_layers[0], nn.Conv2d) and d_layers[0].stride == (2, 2)
    assert isinstance(d_layers[1], nn.LeakyReLU) and d_layers[1].negative_slope == 0.2
    assert all(m.negative_slope == 0.2 for m in d_layers if isinstance(m, nn.LeakyReLU))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_layers) == 1
    assert not any(isinstance(m, (nn.Sigmoid, nn.ReLU)) for m in d_layers)


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_gp_critic_has_no_batchnorm_and_scores_samples_independently(norm: str) -> None:
    x = _batch((6, 1, 28, 28), 3, scale=1.0)
    critic = models.DCGANDiscriminator(width=8, norm=norm).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())
    with torch.no_grad():
        assert torch.allclose(critic(x)[:2], critic(x[:2]), atol=1e-5)
    batchnormed = models.DCGANDiscriminator(width=8, norm="batch").train()
    with torch.no_grad():                   # BatchNorm mixes the batch: the check above can fail
        assert not torch.allclose(batchnormed(x)[:2], batchnormed(x[:2]), atol=1e-5)


def test_dcgan_init() -> None:
    torch.manual_seed(0)
    G = models.DCGANGenerator(width=16)
    G.apply(models.init_dcgan_weights)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    weights = torch.cat([m.weight.flatten() for m in convs])
    assert weights.mean().abs() < 2e-3 and weights.std().item() == pytest.approx(0.02, rel=0.05)
    bns = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    assert torch.cat([m.weight for m in bns]).mean().item() == pytest.approx(1.0, abs=0.01)
    assert all(m.bias.abs().max() == 0 for m in bns)


def test_conv_critic_follows_the_wgan_gp_mnist_script() -> None:
    # gan_mnist.py: 5x5 stride-2 convolutions 28 -> 14 -> 7 -> 4 with w, 2w, 4w channels, LeakyReLU(0.2),
    # a linear output on the 4*4*4w features; BatchNorm after the 2nd and 3rd convolution only in WGAN mode.
    critic = models.ConvCritic(width=8, norm="none")
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(8, (5, 5), (2, 2)), (16, (5, 5), (2, 2)),
                                                                           (32, (5, 5), (2, 2))]
    x = _batch((6, 1, 28, 28), 4, scale=1.0)
    sizes = []
    for m in critic.net:
        x = m(x)
        if isinstance(m, nn.Conv2d):
            sizes.append(x.shape[-1])
    assert sizes == [14, 7, 4] and x.shape == (6, 1)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.Sigmoid)) for m in critic.modules())
    with torch.no_grad():           # no normalisation: each sample's score depends on that sample alone
        y = _batch((6, 1, 28, 28), 5, scale=1.0)
        assert torch.allclose(critic(y)[:2], critic(y[:2]), atol=1e-6)
    wgan_critic = models.ConvCritic(width=8, norm="batch")
    assert sum(isinstance(m, nn.BatchNorm2d) for m in wgan_critic.modules()) == 2
    assert all(isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2
               for m in wgan_critic.net if isinstance(m, nn.LeakyReLU))
