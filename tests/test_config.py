"""Parameter validation: bad input fails early with the valid choices named."""

from __future__ import annotations

import pytest
import torch

from gan_utils import config, repro
from gan_utils.train import GANSetup, OptimizerSpec, TrainConfig
from gan_utils.models import MLPDiscriminator, MLPGenerator
from gan_utils.data import DeviceBatches, ToyBatches, sample_toy


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
    setup = GANSetup(MLPGenerator(8), MLPDiscriminator(), 8, loss="hinj")
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


@pytest.mark.parametrize("bad,why", [
    (2.5, "must be an integer, got 2.5 (float)"),
    (3.0, "(write 3 if that is meant)"),
    (True, "got True (bool)"),
    ("3", "got '3' (str)"),
    (None, "got None"),
    (torch.tensor(3), "(Tensor)"),
])
def test_check_int_refuses_non_integers(bad, why: str) -> None:
    with pytest.raises(ValueError) as err:
        config.check_int("batch_size", bad, minimum=1)
    assert str(err.value).startswith("batch_size must be an integer") and why in str(err.value)


def test_check_int_range_and_numpy_integers() -> None:
    import numpy as np

    assert config.check_int("steps", np.int64(7), minimum=1) == 7
    assert type(config.check_int("steps", np.int64(7))) is int
    with pytest.raises(ValueError, match=r"steps must be an integer with 1 <= steps, got 0"):
        config.check_int("steps", 0, minimum=1)
    with pytest.raises(ValueError, match=r"k must be an integer with k <= 3, got 4"):
        config.check_int("k", 4, maximum=3)


@pytest.mark.parametrize("bad", [-1, config.SEED_MAX + 1, 2**64, 2**100, 2.5, 1.0, False])
def test_seeds_outside_the_range_are_refused_with_it(bad) -> None:
    for entry in (lambda s: config.check_seed("seed", s), repro.seed_everything,
                  lambda s: DeviceBatches(torch.zeros(10, 2), batch_size=2, seed=s),
                  lambda s: ToyBatches("8gaussians", 4, seed=s)):
        with pytest.raises(ValueError, match="seed must be an integer") as err:
            entry(bad)
        if isinstance(bad, int) and not isinstance(bad, bool):
            assert "0 <= seed <= 4294967295" in str(err.value)


def test_largest_seed_works_everywhere_it_is_combined() -> None:
    """seed * 1_000_003 + epoch (per-epoch permutations) and seed + 1 must stay inside 64 bits."""
    top = config.SEED_MAX
    repro.seed_everything(top)
    torch.Generator().manual_seed(top + 1)  # train.py's fixed-noise generator
    batches = DeviceBatches(torch.arange(10.0), batch_size=3, seed=top)
    assert batches.batch(10**9)[0].shape == (3,)  # epoch 3.3e8
    assert ToyBatches("8gaussians", 4, seed=top).batch(10**12)[0].shape == (4, 2)


@pytest.mark.parametrize("bad", [2.5, 0, -1, True, "32"])
def test_batch_sizes_are_true_positive_integers(bad) -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        DeviceBatches(torch.zeros(10, 2), batch_size=bad)
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        ToyBatches("8gaussians", bad)
    with pytest.raises(ValueError, match="n must be an integer"):
        sample_toy("8gaussians", bad)


@pytest.mark.parametrize("bad", [1.5, -1, True])
def test_batch_indices_are_step_counts(bad) -> None:
    with pytest.raises(ValueError, match="batch index k must be an integer"):
        DeviceBatches(torch.zeros(10, 2), batch_size=2).batch(bad)
    with pytest.raises(ValueError, match="batch index k must be an integer"):
        ToyBatches("8gaussians", 4).batch(bad)


def test_infinite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="lr must be finite, got inf"):
        config.check_positive("lr", float("inf"))
