"""Networks used in the book. Discriminators and critics return raw scores (logits):
the losses apply the sigmoid in a numerically stable way, and a Wasserstein critic
must not have one at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .config import check_choice

NORMS: tuple[str, ...] = ("batch", "layer", "none")


def _mlp(sizes: Sequence[int], *, slope: float = 0.2, dropout: float = 0.0,
         batchnorm: bool = False) -> list[nn.Module]:
    """Hidden layers Linear -> [BatchNorm] -> LeakyReLU -> [Dropout] for consecutive sizes."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if batchnorm and i > 0:  # never right after the input
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.LeakyReLU(slope) if slope > 0 else nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


class MLPGenerator(nn.Module):
    """z -> 256 -> 512 -> 1024 -> 784 with LeakyReLU(0.2) and a Tanh output (seed tutorial's G)."""

    def __init__(self, latent_dim: int = 128, hidden: Sequence[int] = (256, 512, 1024),
                 out_shape: Sequence[int] = (1, 28, 28), batchnorm: bool = False) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.out_shape = tuple(out_shape)
        out = int(torch.tensor(self.out_shape).prod())
        self.net = nn.Sequential(*_mlp([latent_dim, *hidden], batchnorm=batchnorm),
                                 nn.Linear(hidden[-1], out), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class MLPDiscriminator(nn.Module):
    """784 -> 1024 -> 512 -> 256 -> 1 with LeakyReLU(0.2) and Dropout(0.3) (seed tutorial's D)."""

    def __init__(self, in_features: int = 784, hidden: Sequence[int] = (1024, 512, 256),
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *_mlp([in_features, *hidden], dropout=dropout),
                                 nn.Linear(hidden[-1], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class ToyMLP(nn.Module):
    """A small ReLU MLP for 2D toy problems; a generator (out 2) or a critic (out 1)."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 256, depth: int = 3) -> None:
        super().__init__()
        layers = _mlp([in_features] + [hidden] * depth, slope=0.0)
        self.net = nn.Sequential(*layers, nn.Linear(hidden, out_features))
        self.out_features = out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y.squeeze(1) if self.out_features == 1 else y


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0.

    Use as ``model.apply(init_dcgan_weights)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
        if module.weight is not None:
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)


def _norm2d(kind: str, channels: int) -> nn.Module:
    check_choice("norm", kind, NORMS)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        # GroupNorm with one group normalises each sample over (C, H, W): layer
        # normalisation, which keeps samples independent (needed by the gradient penalty).
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    """z -> (4w, 7, 7) -> (2w, 14, 14) -> (channels, 28, 28), transposed convolutions only.

    BatchNorm + ReLU everywhere except the Tanh output; no fully connected hidden layer
    (the first layer is a 7x7 transposed convolution of the 1x1 noise "image").
    """

    def __init__(self, latent_dim: int = 100, width: int = 64, channels: int = 1) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 4 * width, 7, 1, 0, bias=False),
            nn.BatchNorm2d(4 * width), nn.ReLU(True),
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width), nn.ReLU(True),
            nn.ConvTranspose2d(2 * width, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """(channels, 28, 28) -> (w, 14, 14) -> (2w, 7, 7) -> score, strided convolutions only.

    ``norm`` is ``batch`` for DCGAN and WGAN, ``layer`` or ``none`` for WGAN-GP: the
    gradient penalty is taken per sample, and BatchNorm mixes the samples of a batch.
    No normalisation on the input layer; no sigmoid on the output.
    """

    def __init__(self, width: int = 64, norm: str = "batch", channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=(norm == "none")),
            _norm2d(norm, 2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 1, 7, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class ConvCritic(nn.Module):
    """(channels, 28, 28) -> (w, 14, 14) -> (2w, 7, 7) -> (4w, 4, 4) -> score: the WGAN-GP MNIST critic.

    The critic of ``igul222/improved_wgan_training`` (``gan_mnist.py``, ``DIM = w = 64``):
    three 5x5 stride-2 convolutions with LeakyReLU(0.2) and a linear output, no sigmoid.
    ``norm="none"`` is that script's WGAN-GP critic; ``norm="batch"`` its WGAN critic
    (BatchNorm after the second and third convolutions).
    """

    def __init__(self, width: int = 64, norm: str = "none", channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 5, 2, 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(width, 2 * width, 5, 2, 2, bias=(norm == "none")),
            _norm2d(norm, 2 * width), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * width, 4 * width, 5, 2, 2, bias=(norm == "none")),
            _norm2d(norm, 4 * width), nn.LeakyReLU(0.2, True),
            nn.Flatten(), nn.Linear(4 * 4 * 4 * width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class BiGANEncoder(nn.Module):
    """x (784 pixels) -> z: the inverse map BiGAN learns next to the generator.

    With ``bounded=True`` the code is ``tanh`` of the last linear layer, so E(x) lies
    in (-1, 1)^d like the prior U(-1, 1)^d it must imitate; otherwise D could tell
    (x, E(x)) from (G(z), z) by the range of the code alone (the BiGAN authors' code
    likewise squashes the encoder output into the uniform prior's interval).
    ``self.net`` stops before the squashing: ``net(x)`` is the pre-activation and
    ``net[:-1](x)`` the last hidden layer, both usable as features.
    """

    def __init__(self, latent_dim: int = 50, hidden: Sequence[int] = (1024, 1024),
                 in_features: int = 784, bounded: bool = True) -> None:
        super().__init__()
        self.bounded = bounded
        self.net = nn.Sequential(nn.Flatten(), *_mlp([in_features, *hidden], batchnorm=True),
                                 nn.Linear(hidden[-1], latent_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = self.net(x)
        return torch.tanh(code) if self.bounded else code


class JointDiscriminator(nn.Module):
    """D(x, z): scores a pair, so it can tell (x, E(x)) from (G(z), z)."""

    def __init__(self, latent_dim: int = 50, hidden: Sequence[int] = (1024, 1024),
                 in_features: int = 784, dropout: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(*_mlp([in_features + latent_dim, *hidden], dropout=dropout),
                                 nn.Linear(hidden[-1], 1))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), z], dim=1)).squeeze(1)
