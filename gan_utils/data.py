"""Data: real MNIST (with an honest offline fallback), 2D toy distributions, device batches.

MNIST is small (60,000 x 784 bytes), so the whole set is moved to the training
device once and batches are slices of it: no DataLoader workers, no per-batch
host-to-device copies.
"""

from __future__ import annotations

import gzip
import math
import os
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import check_choice, check_positive

REPO_ROOT = Path(__file__).resolve().parent.parent
TOY_DATASETS: tuple[str, ...] = ("8gaussians", "25gaussians", "swissroll")
SPLITS: tuple[str, ...] = ("train", "test")

_TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else ``$GAN_DATA_DIR``, else ``data/`` in the repo."""
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("GAN_DATA_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "data"


@dataclass
class ImageData:
    """Images scaled to [-1, 1] (to match a Tanh generator), labels, and where they came from."""

    images: torch.Tensor  # (N, 1, 28, 28) float32 in [-1, 1]
    labels: torch.Tensor  # (N,) int64
    source: str           # e.g. "MNIST train split (60,000 images, torchvision)"

    def __len__(self) -> int:
        return len(self.labels)


def _to_unit_range(raw: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1]."""
    return (raw.float().div(127.5).sub(1.0)).unsqueeze(1)


def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """Read a (possibly gzipped) IDX file into memory with torchvision's own parser."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if kind == "images" else read_label_file
    if path.suffix != ".gz":
        return reader(str(path))
    # torchvision's readers take a path; decompress into a private temp file
    # (never next to the source, which may be read-only).
    with gzip.open(path, "rb") as fh, tempfile.NamedTemporaryFile(suffix=".idx") as tmp:
        tmp.write(fh.read())
        tmp.flush()
        return reader(tmp.name)


def _find_test_split(root: Path) -> tuple[Path, Path] | None:
    found = []
    for stem in _TEST_FILES:
        for candidate in (root / "MNIST" / "raw" / stem, root / "MNIST" / "raw" / f"{stem}.gz"):
            if candidate.exists():
                found.append(candidate)
                break
        else:
            return None
    return found[0], found[1]


def _torchvision_mnist(root: Path, train: bool, download: bool) -> ImageData:
    from torchvision.datasets import MNIST

    ds = MNIST(str(root), train=train, download=download)
    split = "train" if train else "test"
    return ImageData(_to_unit_range(ds.data), ds.targets.long(),
                     f"MNIST {split} split ({len(ds.targets):,} images, torchvision, root {root})")


def load_mnist(data_dir: str | os.PathLike | None = None, split: str = "train",
               download: bool | None = None) -> ImageData:
    """Load real MNIST, scaled to [-1, 1].

    Order of attempts:
      1. torchvision's ``MNIST`` under the data root (downloading it when online);
      2. the official 10,000-image test split as IDX files in ``<root>/MNIST/raw/``
         (the layout torchvision uses), with one printed notice that says so;
      3. otherwise one ``FileNotFoundError`` naming the folder and the fix.

    ``download`` defaults to True unless ``GAN_OFFLINE=1`` is set. Nothing is
    ever synthesised: a fallback is always real MNIST.
    """
    check_choice("split", split, SPLITS)
    root = default_data_dir(data_dir)
    if download is None:
        download = os.environ.get("GAN_OFFLINE") != "1"
    attempts: list[str] = []
    try:
        return _torchvision_mnist(root, train=(split == "train"), download=False)
    except Exception as exc:  # files absent or incomplete: try the next source
        attempts.append(f"torchvision MNIST files in {root / 'MNIST' / 'raw'}: {type(exc).__name__}")
    if download:
        try:
            root.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return _torchvision_mnist(root, train=(split == "train"), download=True)
        except Exception as exc:  # offline, read-only root, ...
            attempts.append(f"download into {root}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")
    else:
        attempts.append("download: skipped (download=False or GAN_OFFLINE=1)")
    files = _find_test_split(root)
    if files is not None:
        images = _read_idx(files[0], "images")
        labels = _read_idx(files[1], "labels").long()
        if split == "train":
            print(f"NOTICE: the 60,000-image MNIST training split is not available here "
                  f"(no local copy under {root} and no download). Using the official "
                  f"10,000-image MNIST TEST split from {files[0].parent} instead: real digits, "
                  f"fewer of them. Online (e.g. in Colab) the full training split is downloaded.")
        return ImageData(_to_unit_range(images), labels,
                         f"MNIST test split ({len(labels):,} images, offline fallback from {files[0].parent})")
    tried = "\n  - ".join(attempts)
    raise FileNotFoundError(
        f"No MNIST data found under {root}.\nTried:\n  - {tried}\n"
        f"Fix: run once with internet access (torchvision downloads MNIST into {root}), or copy "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz into {root / 'MNIST' / 'raw'}, "
        f"or point data_dir / $GAN_DATA_DIR at a folder that has them.")


# ---------------------------------------------------------------- toy 2D data

_SQRT2 = math.sqrt(2.0)


def sample_toy(name: str, n: int, generator: torch.Generator | None = None,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw ``n`` points from a 2D toy distribution, as in the WGAN-GP toy code.

    * ``8gaussians``: 8 modes on a circle of radius 2 (angles k*45 deg), std 0.02,
      then divided by 1.414 -- the ring PacGAN and WGAN-GP use to count modes.
    * ``25gaussians``: a 5 x 5 grid at (2i, 2j), i, j in {-2..2}, std 0.05,
      then divided by 2.828.
    * ``swissroll``: sklearn's swiss roll (t = 1.5 pi (1 + 2u), point t (cos t, sin t),
      noise std 0.25) projected to 2D and divided by 7.5.

    All three land roughly in [-2, 2]^2.
    """
    check_choice("toy dataset", name, TOY_DATASETS)
    check_positive("n", n)
    g = generator
    if name == "8gaussians":
        k = torch.randint(0, 8, (n,), generator=g)
        angle = k.float() * (math.pi / 4)
        centers = 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
        points = (centers + 0.02 * torch.randn(n, 2, generator=g)) / 1.414
    elif name == "25gaussians":
        ij = torch.randint(-2, 3, (n, 2), generator=g).float()
        points = (2.0 * ij + 0.05 * torch.randn(n, 2, generator=g)) / 2.828
    else:
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g))
        points = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1)
        points = (points + 0.25 * torch.randn(n, 2, generator=g)) / 7.5
    return points.to(device)


def toy_mode_centers(name: str) -> torch.Tensor:
    """The mode centres of the Gaussian mixtures (after scaling), for counting covered modes."""
    check_choice("toy dataset with modes", name, TOY_DATASETS[:2])
    if name == "8gaussians":
        angle = torch.arange(8).float() * (math.pi / 4)
        return 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) / 1.414
    grid = torch.stack(torch.meshgrid(torch.arange(-2, 3), torch.arange(-2, 3), indexing="ij"), -1)
    return 2.0 * grid.reshape(-1, 2).float() / 2.828


# ---------------------------------------------------------------- batches

class DeviceBatches:
    """Endless shuffled mini-batches of tensors that already live on the device.

    Batch ``k`` is a pure function of ``(seed, k)``: epoch ``e`` uses the
    permutation drawn from ``seed + e``. That makes resuming exact without
    saving iterator state -- a checkpoint stores the step, nothing else.
    The last incomplete batch of an epoch is dropped, so every batch has the
    same size (BatchNorm and compiled graphs like that).
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0,
                 device: str | torch.device | None = None) -> None:
        if not tensors:
            raise ValueError("DeviceBatches needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError("all tensors must have the same length")
        check_positive("batch_size", batch_size)
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} examples); "
                             f"choose a batch_size between 1 and {n}")
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.n = n
        self.batches_per_epoch = n // self.batch_size
        self._perm_epoch = -1
        self._perm: torch.Tensor | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g).to(self.tensors[0].device)
            self._perm_epoch = epoch
        assert self._perm is not None
        return self._perm

    def batch(self, k: int) -> tuple[torch.Tensor, ...]:
        """The ``k``-th batch (0-based) of the endless stream."""
        epoch, pos = divmod(k, self.batches_per_epoch)
        idx = self._permutation(epoch)[pos * self.batch_size:(pos + 1) * self.batch_size]
        return tuple(t[idx] for t in self.tensors)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        k = 0
        while True:
            yield self.batch(k)
            k += 1


class ToyBatches:
    """Fresh samples from a toy distribution for every batch, reproducible from ``(seed, k)``."""

    def __init__(self, name: str, batch_size: int, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        check_choice("toy dataset", name, TOY_DATASETS)
        check_positive("batch_size", batch_size)
        self.name, self.batch_size, self.seed, self.device = name, int(batch_size), int(seed), device

    def batch(self, k: int) -> tuple[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
        return (sample_toy(self.name, self.batch_size, g, self.device),)
