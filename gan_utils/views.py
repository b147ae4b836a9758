"""What the discriminator sees: how a real batch and a generated batch become its inputs.

A plain GAN shows D an image ``x`` or a sample ``G(z)``. BiGAN shows it pairs,
``(x, E(x))`` and ``(G(z), z)``. PacGAN shows it ``m`` samples at once, concatenated.
The training loop only ever calls ``view.real(x)`` and ``view.fake(G(z), z)`` and
hands the resulting tuples to ``D(*inputs)``; it never asks which GAN it trains.

A view that owns networks (BiGAN's encoder) lists them in ``modules()``: they are
trained with the generator, checkpointed with it, and replaced by compiled
wrappers through ``map_modules`` when ``TrainConfig.compile`` is set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Union

import torch
from torch import nn

from .config import check_positive

Inputs = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class PlainView:
    """D(x) and D(G(z)): every GAN of the book except BiGAN."""

    def real(self, x: torch.Tensor) -> Inputs:
        return (x,)

    def fake(self, fake: torch.Tensor, z: torch.Tensor) -> Inputs:
        return (fake,)

    def modules(self) -> dict[str, nn.Module]:
        return {}

    def map_modules(self, fn: Callable[[nn.Module], nn.Module]) -> PlainView:
        return self

    def check_batch(self, batch_size: int) -> None:
        pass


@dataclass(frozen=True)
class JointView:
    """BiGAN (Donahue et al. 2017): D(x, E(x)) against D(G(z), z); the encoder trains with G."""

    encoder: nn.Module

    def real(self, x: torch.Tensor) -> Inputs:
        return (x, self.encoder(x))

    def fake(self, fake: torch.Tensor, z: torch.Tensor) -> Inputs:
        return (fake, z)

    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def map_modules(self, fn: Callable[[nn.Module], nn.Module]) -> JointView:
        return replace(self, encoder=fn(self.encoder))

    def check_batch(self, batch_size: int) -> None:
        pass


def pack(x: torch.Tensor, m: int) -> torch.Tensor:
    """Concatenate groups of ``m`` consecutive samples along the feature/channel axis.

    ``(B, C, H, W) -> (B/m, m C, H, W)`` and ``(B, d) -> (B/m, m d)``: one reshape of
    contiguous memory, so sample ``i`` of a packed row is row ``m k + i`` of the batch.
    """
    if x.shape[0] % m:
        raise ValueError(f"a batch of {x.shape[0]} cannot be packed in groups of m={m}; "
                         f"use a batch size divisible by {m}")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


@dataclass(frozen=True)
class PackedView:
    """PacGAN (Lin et al. 2018): D judges ``m`` samples jointly, all real or all generated.

    The discriminator must accept ``m`` times the channels (or features) of one
    sample; ``recipes`` builds it so. Packing lets D see the *diversity* of a
    group, which penalises a generator that collapses to few modes.
    """

    m: int = 2

    def __post_init__(self) -> None:
        check_positive("m", self.m)

    def real(self, x: torch.Tensor) -> Inputs:
        return (pack(x, self.m),)

    def fake(self, fake: torch.Tensor, z: torch.Tensor) -> Inputs:
        return (pack(fake, self.m),)

    def modules(self) -> dict[str, nn.Module]:
        return {}

    def map_modules(self, fn: Callable[[nn.Module], nn.Module]) -> PackedView:
        return self

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.m:
            raise ValueError(f"batch_size {batch_size} is not divisible by the packing degree m={self.m}; "
                             f"choose a multiple of {self.m}")


View = Union[PlainView, JointView, PackedView]
