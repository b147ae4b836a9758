"""Data: real MNIST with an honest fallback, toy distributions, device batches."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from gan_utils import data


def test_fallback_to_test_split_with_one_notice(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (mnist_dir / "MNIST" / "raw").glob("t10k-*"):
        shutil.copy(f, raw / f.name)
    d = data.load_mnist(tmp_path, download=False)
    out = capsys.readouterr().out
    assert out.count("NOTICE") == 1 and "TEST split" in out
    assert d.images.shape == (10_000, 1, 28, 28) and d.labels.shape == (10_000,)
    assert d.images.min().item() == -1.0 and d.images.max().item() == 1.0
    assert sorted(d.labels.unique().tolist()) == list(range(10))
    assert "test split" in d.source
    # asking for the test split itself is not a fallback: no notice
    data.load_mnist(tmp_path, split="test", download=False)
    assert "NOTICE" not in capsys.readouterr().out


def test_torchvision_layout_preferred_when_complete(mnist_dir: Path, tmp_path: Path) -> None:
    """With all four files present (here: a real 100-image subset named as the train split)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    src = mnist_dir / "MNIST" / "raw"
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(src / f"{stem}.gz") as fh:
            (raw / stem).write_bytes(fh.read())
    images = read_image_file(str(raw / "t10k-images-idx3-ubyte"))[:100]
    labels = read_label_file(str(raw / "t10k-labels-idx1-ubyte"))[:100]

    def write_idx(path: Path, tensor: torch.Tensor, magic: int) -> None:
        header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
        path.write_bytes(header + tensor.to(torch.uint8).numpy().tobytes())

    write_idx(raw / "train-images-idx3-ubyte", images, 2051)
    write_idx(raw / "train-labels-idx1-ubyte", labels, 2049)
    d = data.load_mnist(tmp_path, download=False)
    assert len(d) == 100 and "train split" in d.source
    assert torch.equal(d.labels, labels.long())


def test_missing_data_error_names_folder_and_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist(tmp_path / "empty", download=False)
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "Fix:" in msg and "t10k-images-idx3-ubyte.gz" in msg


def test_data_dir_resolution(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GAN_DATA_DIR", str(tmp_path))
    assert data.default_data_dir(None) == tmp_path
    assert data.default_data_dir("/x/y") == Path("/x/y")
    monkeypatch.delenv("GAN_DATA_DIR")
    assert data.default_data_dir(None) == data.REPO_ROOT / "data"


def test_device_batches_are_pure_functions_of_k() -> None:
    x = torch.arange(10).float()
    a = data.DeviceBatches(x, batch_size=3, seed=5)
    b = data.DeviceBatches(x, batch_size=3, seed=5)
    assert a.batches_per_epoch == 3
    first_epoch = torch.cat([a.batch(k)[0] for k in range(3)])
    assert len(first_epoch.unique()) == 9  # no repeats inside an epoch; last one dropped
    assert torch.equal(a.batch(7)[0], b.batch(7)[0])
    assert not torch.equal(torch.cat([a.batch(k)[0] for k in range(3)]),
                           torch.cat([a.batch(k)[0] for k in range(3, 6)]))  # reshuffled


@pytest.mark.parametrize("name", data.TOY_DATASETS)
def test_toy_shapes_and_range(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    pts = data.sample_toy(name, 2000, g)
    assert pts.shape == (2000, 2) and pts.abs().max() < 2.5


@pytest.mark.parametrize("name,modes", [("8gaussians", 8), ("25gaussians", 25)])
def test_toy_mixtures_hit_every_mode(name: str, modes: int) -> None:
    g = torch.Generator().manual_seed(1)
    pts = data.sample_toy(name, 5000, g)
    centers = data.toy_mode_centers(name)
    dist = torch.cdist(pts, centers)
    assert centers.shape == (modes, 2)
    assert dist.min(1).values.max() < 0.3  # every point sits near a centre
    assert len(dist.argmin(1).unique()) == modes  # and every centre is used
