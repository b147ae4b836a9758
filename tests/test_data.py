"""Data: real MNIST with an honest fallback, toy distributions, device batches."""

from __future__ import annotations

import gzip
import hashlib
import os
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
    # the same fallback again in this process: announced once, not per call
    again = data.load_mnist(tmp_path, download=False)
    assert "NOTICE" not in capsys.readouterr().out and torch.equal(again.images, d.images)


def test_public_text_names_no_machine_path(tmp_path: Path) -> None:
    text = f"loaded from {tmp_path}/MNIST/raw"
    assert data.public_text(text, tmp_path) == "loaded from <data_dir>/MNIST/raw"
    assert data.public_text("no path here", tmp_path) == "no path here"


def _official(mnist_dir: Path, stem: str) -> bytes:
    return gzip.decompress((mnist_dir / "MNIST" / "raw" / f"{stem}.gz").read_bytes())


def _idx(tensor: torch.Tensor, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def _subset_as_train(mnist_dir: Path, root: Path, monkeypatch, n: int = 100, n_labels: int | None = None,
                     label_fix=None) -> torch.Tensor:
    """Write a real n-image subset as the train split and declare it official (sums, count)."""
    images = torch.frombuffer(bytearray(_official(mnist_dir, "t10k-images-idx3-ubyte")[16:]),
                              dtype=torch.uint8).reshape(-1, 28, 28)[:n]
    labels = torch.frombuffer(bytearray(_official(mnist_dir, "t10k-labels-idx1-ubyte")[8:]),
                              dtype=torch.uint8)[:n_labels or n].clone()
    if label_fix is not None:
        label_fix(labels)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, blob, count in (("train-images-idx3-ubyte", _idx(images, 2051), n),
                              ("train-labels-idx1-ubyte", _idx(labels, 2049), n_labels or n)):
        gz = gzip.compress(blob)
        (raw / f"{stem}.gz").write_bytes(gz)
        (raw / stem).write_bytes(blob)  # torchvision keeps both after a download
        monkeypatch.setitem(data.MNIST_FILES, stem, (hashlib.md5(gz).hexdigest(), hashlib.md5(blob).hexdigest(), count))
    return labels


def test_train_split_files_preferred_when_there(mnist_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    labels = _subset_as_train(mnist_dir, tmp_path, monkeypatch)
    d = data.load_mnist(tmp_path, download=False)
    assert len(d) == 100 and "train split" in d.source and "NOTICE" not in capsys.readouterr().out
    assert torch.equal(d.labels, labels.long())


def _test_split_copy(mnist_dir: Path, root: Path, *, images: bytes | None = None, labels: bytes | None = None,
                     plain: bool = False) -> Path:
    """A copy of the offline test split in a fresh folder, with either file replaced."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem, blob in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        if plain:
            (raw / stem).write_bytes(_official(mnist_dir, stem) if blob is None else blob)
        else:
            src = (mnist_dir / "MNIST" / "raw" / f"{stem}.gz").read_bytes()
            (raw / f"{stem}.gz").write_bytes(src if blob is None else blob)
    return raw


def _changed_pixel(mnist_dir: Path) -> bytes:
    raw = bytearray(_official(mnist_dir, "t10k-images-idx3-ubyte"))
    raw[16 + 5000] ^= 0x01
    return bytes(raw)


@pytest.mark.parametrize("case,expect", [
    ("truncated gz", "not a complete gzip file"),
    ("corrupt gz", "not a complete gzip file"),
    ("not gzip", "not a complete gzip file"),
    ("empty gz", "too few for an IDX header"),
    ("changed pixel gz", "its MD5 is"),
    ("wrong magic gz", "IDX magic number is 2049"),
    ("too few images gz", "header says shape (100, 28, 28), MNIST's is (10000, 28, 28)"),
    ("truncated idx", "its header needs 7,840,016"),
    ("changed pixel idx", "the official file's is 2646ac647ad5339dbf082846283269ea"),
    ("extra bytes idx", "holds 7,840,017 bytes"),
])
def test_damaged_image_file_is_named_with_the_fix(mnist_dir: Path, tmp_path: Path, case: str, expect: str) -> None:
    gz = (mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").read_bytes()
    official = _official(mnist_dir, "t10k-images-idx3-ubyte")
    corrupt = bytearray(gz)
    corrupt[len(gz) // 2:len(gz) // 2 + 64] = bytes(64)
    blobs = {  # built on demand: compressing 7.8 MB takes a while
        "truncated gz": lambda: gz[:len(gz) // 2],
        "corrupt gz": lambda: bytes(corrupt),
        "not gzip": lambda: b"<html>404 Not Found</html>",
        "empty gz": lambda: gzip.compress(b""),
        "changed pixel gz": lambda: gzip.compress(_changed_pixel(mnist_dir), compresslevel=1),
        "wrong magic gz": lambda: gzip.compress((2049).to_bytes(4, "big") + official[4:], compresslevel=1),
        "too few images gz": lambda: gzip.compress(official[:4] + (100).to_bytes(4, "big") + official[8:16 + 100 * 784]),
        "truncated idx": lambda: official[:len(official) // 2],
        "changed pixel idx": lambda: _changed_pixel(mnist_dir),
        "extra bytes idx": lambda: official + b"\0",
    }
    raw = _test_split_copy(mnist_dir, tmp_path, images=blobs[case](), plain=case.endswith("idx"))
    for split in ("train", "test"):  # a damaged file is never skipped for another source
        with pytest.raises(data.DataFileError) as err:
            data.load_mnist(tmp_path, split=split, download=False)
        msg = str(err.value)
        name = "t10k-images-idx3-ubyte" + ("" if case.endswith("idx") else ".gz")
        assert str(raw / name) in msg and expect in msg and "Fix:" in msg, msg


@pytest.mark.parametrize("case,expect", [
    ("label 10", "its MD5 is"),
    ("labels for other images", "its MD5 is"),
    ("short labels", "header says shape (9999,)"),
])
def test_labels_that_do_not_match_are_refused(mnist_dir: Path, tmp_path: Path, case: str, expect: str) -> None:
    official = bytearray(_official(mnist_dir, "t10k-labels-idx1-ubyte"))
    if case == "label 10":
        official[8 + 123] = 10
    elif case == "labels for other images":
        official[8:] = official[9:] + official[8:9]  # shifted by one: still 0-9, wrong digits
    else:
        official = (2049).to_bytes(4, "big") + (9999).to_bytes(4, "big") + official[8:-1]
    raw = _test_split_copy(mnist_dir, tmp_path, labels=gzip.compress(bytes(official)))
    with pytest.raises(data.DataFileError) as err:
        data.load_mnist(tmp_path, split="test", download=False)
    assert str(raw / "t10k-labels-idx1-ubyte.gz") in str(err.value) and expect in str(err.value)


def test_counts_and_label_range_checked_beyond_the_sums(mnist_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """With a table declaring other files official, the content checks still hold."""
    _subset_as_train(mnist_dir, tmp_path / "a", monkeypatch, n=100, n_labels=99)
    with pytest.raises(data.DataFileError, match="holds 99 labels for 100 images"):
        data.load_mnist(tmp_path / "a", download=False)

    def eleven(labels: torch.Tensor) -> None:
        labels[7] = 11

    _subset_as_train(mnist_dir, tmp_path / "b", monkeypatch, label_fix=eleven)
    with pytest.raises(data.DataFileError, match="holds label 11; MNIST labels are 0-9"):
        data.load_mnist(tmp_path / "b", download=False)


def test_a_recompressed_official_file_is_accepted(mnist_dir: Path, tmp_path: Path) -> None:
    recompressed = gzip.compress(_official(mnist_dir, "t10k-images-idx3-ubyte"), compresslevel=1)
    _test_split_copy(mnist_dir, tmp_path, images=recompressed)
    assert len(data.load_mnist(tmp_path, split="test", download=False)) == 10_000


def test_decompressed_official_files_are_accepted(mnist_dir: Path, tmp_path: Path) -> None:
    _test_split_copy(mnist_dir, tmp_path, plain=True)
    d = data.load_mnist(tmp_path, split="test", download=False)
    assert len(d) == 10_000 and sorted(d.labels.unique().tolist()) == list(range(10))


@pytest.mark.parametrize("missing", ["labels", "images"])
def test_one_file_without_its_partner_is_named(mnist_dir: Path, tmp_path: Path, missing: str) -> None:
    raw = _test_split_copy(mnist_dir, tmp_path)
    gone = "t10k-labels-idx1-ubyte" if missing == "labels" else "t10k-images-idx3-ubyte"
    (raw / f"{gone}.gz").unlink()
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist(tmp_path, download=False)
    msg = str(err.value)
    assert f"has no {missing} file beside it" in msg and str(raw / f"{gone}.gz") in msg and "Fix:" in msg


def test_data_dir_that_is_a_file(mnist_dir: Path, tmp_path: Path) -> None:
    raw = _test_split_copy(mnist_dir, tmp_path)
    with pytest.raises(NotADirectoryError) as err:
        data.load_mnist(raw / "t10k-images-idx3-ubyte.gz", download=False)
    assert "is a file, not a folder" in str(err.value) and f"perhaps {tmp_path}" in str(err.value)


@pytest.mark.parametrize("inner", ["MNIST", "MNIST/raw"])
def test_data_dir_pointing_inside_the_layout(mnist_dir: Path, tmp_path: Path, inner: str) -> None:
    _test_split_copy(mnist_dir, tmp_path)
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist(tmp_path / inner, download=True)  # refused before any download
    assert f"Fix: pass data_dir={str(tmp_path)!r}" in str(err.value)
    assert sorted(p.name for p in (tmp_path / inner).iterdir()) == (["raw"] if inner == "MNIST" else
                                                                    ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])


def test_failed_download_creates_no_folders(tmp_path: Path, monkeypatch) -> None:
    """A mistyped data_dir, offline: nothing is left behind (the download is simulated)."""
    from torchvision.datasets import MNIST

    def offline(self) -> None:
        os.makedirs(self.raw_folder, exist_ok=True)
        Path(self.raw_folder, "train-images-idx3-ubyte.gz").write_bytes(b"partial")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: <urlopen error no network>")

    monkeypatch.setattr(MNIST, "download", offline)
    typo = tmp_path / "dtaa" / "mnist"
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist(typo, download=True)
    assert not (tmp_path / "dtaa").exists()
    assert "the folder does not exist" in str(err.value) and "no network" in str(err.value)
    (tmp_path / "existing").mkdir()
    with pytest.raises(FileNotFoundError):
        data.load_mnist(tmp_path / "existing", download=True)
    assert list((tmp_path / "existing").iterdir()) == []  # MNIST/raw made by the attempt is gone


def test_bad_data_dir_and_split_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_dir must be a folder path"):
        data.load_mnist(5, download=False)
    with pytest.raises(ValueError, match="'train', 'test'"):
        data.load_mnist(tmp_path, split="validation", download=False)


def test_missing_data_error_names_folder_and_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        data.load_mnist(tmp_path / "empty", download=False)
    msg = str(err.value)
    assert str(tmp_path / "empty") in msg and "Fix:" in msg and "t10k-images-idx3-ubyte.gz" in msg
    assert not (tmp_path / "empty").exists()


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
