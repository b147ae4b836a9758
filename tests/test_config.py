"""Parameter validation: bad input fails early with the valid choices named."""

from __future__ import annotations

import pytest
import torch

from gan_utils import config, repro
from gan_utils.train import GANSetup, OptimizerSpec, TrainConfig
from gan_utils.models import MLPDiscriminator, MLPGenerator
from gan_utils.data import DeviceBatches, sample_toy


def test_unknown_profile_lists_choices() -> None:
    with pytest.raises(ValueError) as err:
        config.resolve_profile("nonsense")
    for name in ("smoke", "quick", "full", "auto"):
        assert repr(name) in str(err.value)


@pytest.mark.parametrize("device,expected", [("cpu", "quick"), ("cuda", "full")])
def test_auto_profile_follows_device(device: str, expected: str) -> None:
    assert config.resolve_profile("auto", device) == expected
    assert config.resolve_profile("smoke", device) == "smoke"


def test_profile_settings_picks_row_and_requires_all() -> None:
    table = {"smoke": {"steps": 1}, "quick": {"steps": 10}, "full": {"steps": 100}}
    assert config.profile_settings("auto", table, "cpu") == {"steps": 10}
    with pytest.raises(KeyError):
        config.profile_settings("smoke", {"smoke": {}})


def test_unknown_device() -> None:
    with pytest.raises(ValueError, match="'auto', 'cuda', 'mps', 'cpu'"):
        repro.pick_device("tpu")
    assert repro.pick_device("cpu").type == "cpu"


@pytest.mark.parametrize("bad", [0, -3, float("nan"), "10", True])
def test_non_positive_steps_rejected(bad) -> None:
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=bad).validate()


def test_unknown_loss_optimizer_noise() -> None:
    setup = GANSetup(MLPGenerator(8), MLPDiscriminator(), 8, loss="hinge")
    with pytest.raises(ValueError, match="'non_saturating'"):
        setup.validate()
    with pytest.raises(ValueError, match="'adam', 'rmsprop', 'sgd'"):
        OptimizerSpec("adagrad").build([torch.nn.Parameter(torch.zeros(1))])
    with pytest.raises(ValueError, match="'normal', 'uniform'"):
        GANSetup(MLPGenerator(8), MLPDiscriminator(), 8, noise="cauchy").validate()


def test_batch_larger_than_dataset() -> None:
    with pytest.raises(ValueError, match="larger than the dataset"):
        DeviceBatches(torch.zeros(10, 2), batch_size=11)


def test_unknown_toy_dataset() -> None:
    with pytest.raises(ValueError, match="'8gaussians', '25gaussians', 'swissroll'"):
        sample_toy("moons", 10)


def test_seed_everything_is_deterministic_and_validated() -> None:
    repro.seed_everything(3)
    a = torch.randn(5)
    repro.seed_everything(3)
    assert torch.equal(a, torch.randn(5))
    with pytest.raises(ValueError):
        repro.seed_everything(-1)


def test_manifest_records_what_matters() -> None:
    import time

    m = repro.run_manifest(profile="quick", seed=1, device=torch.device("cpu"), started=time.time(), data="x")
    for key in ("profile", "seed", "device", "torch", "torchvision", "wall time (s)", "data"):
        assert key in m
    assert "profile" in repro.format_manifest(m)
