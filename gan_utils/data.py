"""Data: real MNIST (with an honest offline fallback), 2D toy distributions, device batches.

MNIST is small (60,000 x 784 bytes), so the whole set is moved to the training
device once and batches are slices of it: no DataLoader workers, no per-batch
host-to-device copies.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import check_choice, check_int, check_seed

REPO_ROOT = Path(__file__).resolve().parent.parent
TOY_DATASETS: tuple[str, ...] = ("8gaussians", "25gaussians", "swissroll")
SPLITS: tuple[str, ...] = ("train", "test")

# The official files: (MD5 of the .gz as torchvision publishes it in
# torchvision.datasets.MNIST.resources, MD5 of the decompressed IDX file, item count).
# The decompressed sums are the ones PyTorch's own CI scripts check; torchvision keeps both
# files after a download, and a copy may hold either.
MNIST_FILES: dict[str, tuple[str, str, int]] = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb", 60_000),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624", 60_000),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea", 10_000),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637", 10_000),
}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_IDX_MAGIC = {"images": 2051, "labels": 2049}  # unsigned bytes, 3 and 1 dimensions


class DataFileError(ValueError):
    """An MNIST file is there but damaged or not the official one; the message names it and the fix."""


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data root: the explicit argument, else ``$GAN_DATA_DIR``, else ``data/`` in the repo."""
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise ValueError(f"data_dir must be a folder path (str or pathlib.Path) or None, got {data_dir!r}")
    if data_dir:
        return Path(data_dir).expanduser()
    env = os.environ.get("GAN_DATA_DIR")
    return Path(env).expanduser() if env else REPO_ROOT / "data"


_SHOWN_NOTICES: set[str] = set()


def notice(message: str) -> None:
    """Print ``message`` once per process.

    A fallback is announced the first time it happens; the chapters load the same data
    through several functions (the GAN's batches, the feature network, its held-out
    digits), and one notice per call would repeat the same paragraph on the page.
    """
    if message not in _SHOWN_NOTICES:
        _SHOWN_NOTICES.add(message)
        print(message)


def public_text(text: str, data_dir: str | os.PathLike | None = None) -> str:
    """``text`` with the data folder written as ``<data_dir>``: committed outputs name no machine paths."""
    return text.replace(str(default_data_dir(data_dir)), "<data_dir>")


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


def _damaged(path: Path, what: str) -> DataFileError:
    return DataFileError(
        f"MNIST file {path} is damaged or not the official file: {what}.\n"
        f"Fix: delete it (and its {'decompressed copy' if path.suffix == '.gz' else '.gz'} beside it, if any) "
        f"and run once with internet access so torchvision downloads it again, or copy the official "
        f"file (MD5 {MNIST_FILES[path.name.removesuffix('.gz')][0]} for the .gz) into {path.parent}.")


def _read_verified(path: Path) -> bytes:
    """The decompressed bytes of an official MNIST file, or a DataFileError naming it.

    Checked against the published MD5 before parsing: a changed pixel must not train silently.
    """
    stem = path.name.removesuffix(".gz")
    gz_md5, raw_md5, _ = MNIST_FILES[stem]
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise _damaged(path, f"it cannot be read ({exc.strerror or exc})") from exc
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            raise _damaged(path, f"it is not a complete gzip file ({type(exc).__name__}: {exc})") from exc
        # A re-compressed copy of the right content is fine; otherwise the .gz sum must match.
        if hashlib.md5(blob).hexdigest() != gz_md5 and hashlib.md5(raw).hexdigest() != raw_md5:
            _check_idx(path, raw)  # a structural fault is the more useful message
            raise _damaged(path, f"its MD5 is {hashlib.md5(blob).hexdigest()}, torchvision publishes {gz_md5}")
        return raw
    if hashlib.md5(blob).hexdigest() != raw_md5:
        _check_idx(path, blob)
        raise _damaged(path, f"its MD5 is {hashlib.md5(blob).hexdigest()}, the official file's is {raw_md5}")
    return blob


def _check_idx(path: Path, raw: bytes) -> tuple[int, ...]:
    """Parse and check an IDX header against what MNIST holds; return the shape."""
    stem = path.name.removesuffix(".gz")
    kind = "images" if "images" in stem else "labels"
    count = MNIST_FILES[stem][2]
    ndim = 3 if kind == "images" else 1
    if len(raw) < 4 + 4 * ndim:
        raise _damaged(path, f"it holds {len(raw)} bytes, too few for an IDX header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _IDX_MAGIC[kind]:
        raise _damaged(path, f"its IDX magic number is {magic}, MNIST {kind} files have {_IDX_MAGIC[kind]}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = (count, 28, 28) if kind == "images" else (count,)
    if shape != expected:
        raise _damaged(path, f"its header says shape {shape}, MNIST's is {expected}")
    size = 4 + 4 * ndim + math.prod(shape)
    if len(raw) != size:
        raise _damaged(path, f"it holds {len(raw):,} bytes after decompression, its header needs {size:,}")
    return shape


def _load_idx(path: Path) -> torch.Tensor:
    """A verified MNIST IDX file (``.gz`` or not) as a uint8 tensor."""
    raw = _read_verified(path)
    shape = _check_idx(path, raw)
    header = 4 + 4 * len(shape)
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(shape)


def _split_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of ``split`` in ``<root>/MNIST/raw``; the .gz preferred.

    The .gz is read when both are there because torchvision's MD5 is for it. One of the
    pair without the other is an error, not a reason to look elsewhere.
    """
    raw_dir = root / "MNIST" / "raw"
    found: list[Path | None] = []
    for kind in ("images", "labels"):
        stem = f"{_SPLIT_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        gz, plain = raw_dir / f"{stem}.gz", raw_dir / stem
        found.append(gz if gz.exists() else plain if plain.exists() else None)
    if found[0] is None and found[1] is None:
        return None
    if found[0] is None or found[1] is None:
        have, lacking = (found[1], "images") if found[0] is None else (found[0], "labels")
        assert have is not None
        other = have.name.replace("labels-idx1" if lacking == "images" else "images-idx3",
                                  "images-idx3" if lacking == "images" else "labels-idx1")
        raise FileNotFoundError(
            f"MNIST file {have} has no {lacking} file beside it ({raw_dir / other} is missing).\n"
            f"Fix: copy {other} (or its decompressed form) into {raw_dir}, or remove {have.name} "
            f"and run once with internet access so torchvision downloads both.")
    return found[0], found[1]


def _load_split(files: tuple[Path, Path], split: str, source: str) -> ImageData:
    images, labels = _load_idx(files[0]), _load_idx(files[1])
    # The MD5s already pin the content; these checks keep the messages clear if the table is
    # ever extended (or patched in a test) with files of another size.
    if len(images) != len(labels):
        raise _damaged(files[1], f"it holds {len(labels):,} labels for {len(images):,} images in {files[0].name}")
    if int(labels.max()) > 9:
        raise _damaged(files[1], f"it holds label {int(labels.max())}; MNIST labels are 0-9")
    return ImageData(_to_unit_range(images), labels.long(),
                     f"MNIST {split} split ({len(labels):,} images, {source})")


def _check_root(root: Path, origin: str) -> None:
    """Refuse a data root that is a file, or that is the MNIST folder itself (a common slip)."""
    if root.exists() and not root.is_dir():
        parent = root.parent.parent.parent if root.parent.name == "raw" else root.parent
        raise NotADirectoryError(
            f"data_dir {root} ({origin}) is a file, not a folder.\n"
            f"Fix: point data_dir at the folder that holds MNIST/raw/ (here perhaps {parent}).")
    for inner in (root / "MNIST", root / "MNIST" / "raw"):
        if inner.exists() and not inner.is_dir():
            raise NotADirectoryError(f"{inner} is a file, but torchvision's layout needs a folder there.\n"
                                     f"Fix: move it away, or point data_dir at another folder.")
    for inner, up in ((root / "raw", root.parent), (root, root.parent.parent)):
        if not (root / "MNIST").is_dir() and any((inner / f"{stem}{ext}").exists()
                                                 for stem in MNIST_FILES for ext in ("", ".gz")):
            raise FileNotFoundError(
                f"data_dir {root} ({origin}) holds MNIST files in {inner}, but they are looked for in "
                f"{root / 'MNIST' / 'raw'} (torchvision's layout).\nFix: pass data_dir={str(up)!r}.")


def _download(root: Path, split: str) -> None:
    """Download with torchvision; on failure remove every folder this attempt created."""
    from torchvision.datasets import MNIST

    raw_dir = root / "MNIST" / "raw"
    created = [d for d in (raw_dir, *raw_dir.parents) if not d.exists()]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            MNIST(str(root), train=(split == "train"), download=True)
    except BaseException:
        for folder in created:  # deepest first; only what this attempt made, and only if empty
            if folder.is_dir():
                for f in folder.iterdir():
                    if f.is_file() and f.name.removesuffix(".gz") in MNIST_FILES:
                        f.unlink()  # a partial download
                try:
                    folder.rmdir()
                except OSError:
                    break  # something else put files there: leave it alone
        raise


def load_mnist(data_dir: str | os.PathLike | None = None, split: str = "train",
               download: bool | None = None) -> ImageData:
    """Load real MNIST, scaled to [-1, 1], from files checked against their published MD5s.

    Order of attempts:
      1. the split's IDX files in ``<root>/MNIST/raw/`` (torchvision's layout, ``.gz`` or not);
      2. a download by torchvision into that folder (when online);
      3. for ``split="train"``, the official 10,000-image test split there, with one
         printed notice that says so;
      4. otherwise one ``FileNotFoundError`` naming the folder and the fix.

    A file that is there but damaged, or a labels file without its images file, raises at
    once (``DataFileError`` / ``FileNotFoundError`` naming the file): it is never skipped for
    another source. ``download`` defaults to True unless ``GAN_OFFLINE=1`` is set. A failed
    download leaves no folders behind, so a mistyped ``data_dir`` is not created. Nothing is
    ever synthesised: a fallback is always real MNIST.
    """
    check_choice("split", split, SPLITS)
    origin = "the data_dir argument" if data_dir else (
        "$GAN_DATA_DIR" if os.environ.get("GAN_DATA_DIR") else "the default, data/ in the repository")
    root = default_data_dir(data_dir)
    if download is None:
        download = os.environ.get("GAN_OFFLINE") != "1"
    _check_root(root, origin)
    raw_dir = root / "MNIST" / "raw"
    files = _split_files(root, split)
    if files is not None:
        return _load_split(files, split, f"torchvision, root {root}")
    attempts = [f"{split} split files in {raw_dir}: not there"]
    if download:
        try:
            _download(root, split)
        except Exception as exc:  # offline, read-only root, ...
            attempts.append(f"download into {root}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:120] if str(exc) else ''}")
        else:
            files = _split_files(root, split)
            if files is not None:
                return _load_split(files, split, f"torchvision, root {root}")
            attempts.append(f"download into {root}: finished, but the files are not in {raw_dir}")
    else:
        attempts.append("download: skipped (download=False or GAN_OFFLINE=1)")
    files = _split_files(root, "test") if split == "train" else None
    if files is not None:
        data = _load_split(files, "test", f"offline fallback from {files[0].parent}")
        notice(f"NOTICE: the 60,000-image MNIST training split is not available here "
               f"(no local copy under {root} and no download). Using the official "
               f"10,000-image MNIST TEST split from {files[0].parent} instead: real digits, "
               f"fewer of them. Online (e.g. in Colab) the full training split is downloaded.")
        return data
    tried = "\n  - ".join(attempts)
    where = "" if root.is_dir() else f" (the folder does not exist; data_dir came from {origin})"
    raise FileNotFoundError(
        f"No MNIST data found under {root}{where}.\nTried:\n  - {tried}\n"
        f"Fix: run once with internet access (torchvision downloads MNIST into {root}), or copy "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz into {raw_dir}, "
        f"or point data_dir / $GAN_DATA_DIR at a folder that has them.")


# ---------------------------------------------------------------- toy 2D data

_SQRT2 = math.sqrt(2.0)


def sample_toy(name: str, n: int, generator: torch.Generator | None = None,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw ``n`` points from a 2D toy distribution, as in the WGAN-GP toy code.

    * ``8gaussians``: 8 modes on a circle of radius 2 (angles k*45 deg), std 0.02,
      then divided by 1.414 -- the ring of the WGAN-GP toy code, which draws it but counts
      no modes (the mode counts of VEEGAN and PacGAN use their own ring: :mod:`gan_utils.mixtures`).
    * ``25gaussians``: a 5 x 5 grid at (2i, 2j), i, j in {-2..2}, std 0.05,
      then divided by 2.828.
    * ``swissroll``: sklearn's swiss roll (t = 1.5 pi (1 + 2u), point t (cos t, sin t),
      noise std 0.25) projected to 2D and divided by 7.5.

    All three land roughly in [-2, 2]^2.
    """
    check_choice("toy dataset", name, TOY_DATASETS)
    n = check_int("n", n, minimum=1)
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

def _check_index(k: int) -> None:
    """Batch indices are step counts: a float or negative one would silently pick another batch."""
    if type(k) is not int or k < 0:  # the fast path of check_int, called once per batch
        check_int("batch index k", k, minimum=0)


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
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} examples); "
                             f"choose a batch_size between 1 and {n}")
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.batch_size = batch_size
        self.seed = check_seed("seed", seed)  # the range keeps seed * 1_000_003 + epoch in 64 bits
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
        _check_index(k)
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
        self.name, self.device = name, device
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.seed = check_seed("seed", seed)

    def batch(self, k: int) -> tuple[torch.Tensor]:
        _check_index(k)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + k)
        return (sample_toy(self.name, self.batch_size, g, self.device),)
