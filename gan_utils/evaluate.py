"""How good is a generator? An MNIST feature network and the metrics computed in its space.

No Inception weights can be downloaded offline, and an ImageNet network is a poor judge of
handwritten digits anyway. As TF-GAN's ``mnist_frechet_distance`` and the "LeNet FID"
literature do, the package trains a small CNN classifier on labelled MNIST itself:

* deterministically (fixed seed, deterministic algorithms) on the labelled data available:
  the 60,000-image training split where torchvision has it, otherwise (offline) the reference
  part of :func:`gan_utils.metrics.fixed_split` of the 10,000 official test images;
* cached after the first training in ``$GAN_CACHE_DIR`` or ``.cache/`` in the repository
  (never the data folder, which may be read-only), keyed by what it was trained on;
* its 128-unit penultimate layer gives the features, its logits give p(y|x), and its
  held-out accuracy travels with it and is printed wherever it is used.

In that space: FID and KID (through ``torchmetrics``, statistics in float64), the classifier
Inception Score, improved precision/recall (k = 3) and density/coverage (k = 5), computed
blockwise on torch, and two cheap per-snapshot numbers -- the share of samples classified
with confidence >= 0.9 and the smallest class share. :func:`evaluate_generator` computes all
of them for N generated against N real images, and the same numbers for two disjoint sets of
real images (the *floor*: what "perfect" looks like at that sample size).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import data as data_mod
from .config import check_positive
from .metrics import _block_rows, fixed_split

ARCH_VERSION = "mnist-cnn-v1"   # bump when the architecture or the training recipe changes
NUM_CLASSES = 10
NUM_FEATURES = 128
IMAGE_SHAPE = (28, 28)
TRAIN_SEED = 0
# Offline protocol: the same fixed split of the 10,000 test images as the BiGAN chapter.
OFFLINE_N_HELDOUT = 2000
OFFLINE_SPLIT_SEED = 2017
CONFIDENCE = 0.9
RANGE_TOLERANCE = 1e-3          # images must lie in [-1 - tol, 1 + tol]


# ------------------------------------------------------------------ input checks

def check_images(images: torch.Tensor, name: str = "images", channels: tuple[int, ...] = (1,)
                 ) -> torch.Tensor:
    """Refuse anything the feature network cannot judge; return ``images`` as float.

    Expected: a float tensor of shape (N, C, 28, 28) with N >= 1, C in ``channels``, finite
    values in [-1, 1] (the range of the book's Tanh generators and of ``data.load_mnist``).
    """
    expect = f"a float tensor of shape (N, {'|'.join(map(str, channels))}, 28, 28) with values in [-1, 1]"
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be {expect}, got {type(images).__name__}")
    if images.dim() != 4 or tuple(images.shape[2:]) != IMAGE_SHAPE or images.shape[1] not in channels:
        hint = (" (add the channel axis with images.unsqueeze(1))"
                if images.dim() == 3 and tuple(images.shape[1:]) == IMAGE_SHAPE else "")
        raise ValueError(f"{name} must be {expect}, got shape {tuple(images.shape)}{hint}")
    if len(images) == 0:
        raise ValueError(f"{name} is empty (shape {tuple(images.shape)}); it must hold at least one image")
    if not images.is_floating_point():
        raise ValueError(f"{name} must be {expect}, got dtype {images.dtype}; "
                         f"scale uint8 pixels with images.float() / 127.5 - 1")
    if not bool(torch.isfinite(images).all()):
        bad = int((~torch.isfinite(images)).flatten(1).any(1).sum())
        raise ValueError(f"{name} holds NaN or infinite values in {bad} of {len(images)} images; "
                         f"the generator diverged -- evaluate an earlier checkpoint")
    lo, hi = float(images.min()), float(images.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{name} must be {expect}, got values in [{lo:.3g}, {hi:.3g}]; "
                         f"images in [0, 1] map to [-1, 1] with 2 * x - 1")
    return images.float()


def _check_features(features: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or len(features) == 0:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"{name} must be a non-empty (N, D) tensor of features, got {shape}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} holds NaN or infinite values; check the images they came from")
    return features


# ------------------------------------------------------------------ the network

class FeatureNet(nn.Module):
    """A LeNet-style digit classifier: two 3x3 conv + max-pool stages, 128 features, 10 logits.

    Small on purpose: it trains to > 99% held-out accuracy in well under 90 s on two CPU cores,
    and a forward pass over 10,000 images takes about a second. ``num_features`` is what
    ``torchmetrics`` reads to size its statistics.
    """

    num_features = NUM_FEATURES

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16 x 14 x 14
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 7 x 7
            nn.Flatten(), nn.Linear(32 * 7 * 7, NUM_FEATURES), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.25)
        self.head = nn.Linear(NUM_FEATURES, NUM_CLASSES)
        # Filled in by load_feature_net / train_feature_net, saved with the weights.
        self.info: dict[str, object] = {}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (N, 128): the space of FID, KID and precision/recall."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 10); their softmax is p(y|x)."""
        return self.head(self.dropout(self.features(x)))

    @property
    def accuracy(self) -> float:
        return float(self.info.get("accuracy", float("nan")))

    def describe(self) -> str:
        """One line: what the network was trained on and its held-out accuracy."""
        i = self.info
        if not i:
            return "feature network: untrained"
        return (f"feature network {i.get('arch')}: {100 * self.accuracy:.2f}% accuracy on {i.get('held_out')}; "
                f"trained on {i.get('trained_on')}")


class FeatureExtractor(nn.Module):
    """The network's penultimate layer as a module, e.g. ``FrechetInceptionDistance(feature=...)``."""

    def __init__(self, net: FeatureNet) -> None:
        super().__init__()
        self.net = net
        self.num_features = net.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


class _PrecomputedFeatures(nn.Module):
    """Identity 'feature extractor' for torchmetrics: the features are computed once, by us,
    and reused for FID, KID and precision/recall."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


# ------------------------------------------------------------------ training

@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels for the duration of training; the caller's setting is restored."""
    previous = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=warn_only)


def _random_shift(x: torch.Tensor, g: torch.Generator, margin: int = 2) -> torch.Tensor:
    """Translate every image by up to ``margin`` pixels (background -1 fills the border)."""
    n = len(x)
    padded = F.pad(x[:, 0], (margin, margin, margin, margin), value=-1.0)
    dy = torch.randint(0, 2 * margin + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * margin + 1, (n,), generator=g)
    idx = torch.arange(IMAGE_SHAPE[0])
    rows = (dy[:, None] + idx[None])[:, :, None]
    cols = (dx[:, None] + idx[None])[:, None, :]
    return padded[torch.arange(n)[:, None, None], rows, cols].unsqueeze(1)


def default_epochs(n_train: int) -> int:
    """About 120,000 image passes (15 epochs of 8,000 images), at least 3 epochs (of 60,000)."""
    return max(3, round(120_000 / max(1, n_train)))


def train_feature_net(images: torch.Tensor, labels: torch.Tensor, held_out_images: torch.Tensor,
                      held_out_labels: torch.Tensor, *, seed: int = TRAIN_SEED, epochs: int | None = None,
                      batch_size: int = 128, verbose: bool = True) -> FeatureNet:
    """Train a :class:`FeatureNet` on CPU, deterministically, and measure it on the held-out set.

    Adam with a one-cycle learning rate, random shifts of up to 2 pixels. Everything random
    (initialisation, batch order, shifts) comes from ``seed``; the global RNG is left alone.
    """
    images = check_images(images, "images")
    held_out_images = check_images(held_out_images, "held_out_images")
    if len(labels) != len(images) or len(held_out_labels) != len(held_out_images):
        raise ValueError("images and labels (and held_out_images and held_out_labels) must have equal lengths")
    epochs = default_epochs(len(images)) if epochs is None else epochs
    check_positive("epochs", epochs)
    batch_size = min(batch_size, len(images))
    started = time.perf_counter()
    with _deterministic(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = FeatureNet()
        g = torch.Generator().manual_seed(seed)
        steps_per_epoch = len(images) // batch_size
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(len(images), generator=g)
            for i in range(steps_per_epoch):
                idx = perm[i * batch_size:(i + 1) * batch_size]
                loss = F.cross_entropy(net(_random_shift(images[idx], g)), labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        net.eval()
    seconds = time.perf_counter() - started
    _, logits = extract(net, held_out_images, device="cpu")
    accuracy = float((logits.argmax(1) == held_out_labels.cpu()).float().mean())
    net.info = {"arch": ARCH_VERSION, "accuracy": accuracy, "seed": int(seed), "epochs": int(epochs),
                "n_train": len(images), "n_held_out": len(held_out_images), "train_seconds": round(seconds, 1),
                "torch": str(torch.__version__)}
    if verbose:
        print(f"Trained the feature network in {seconds:.0f} s: {100 * accuracy:.2f}% accuracy on "
              f"{len(held_out_images):,} held-out images")
    return net


# ------------------------------------------------------------------ data and cache

def cache_dir() -> Path:
    """``$GAN_CACHE_DIR`` if set, else ``.cache/`` in the repository (git-ignored)."""
    env = os.environ.get("GAN_CACHE_DIR")
    return Path(env).expanduser() if env else data_mod.REPO_ROOT / ".cache"


def _content_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).numpy().tobytes())
    h.update(labels.to(torch.int64).numpy().tobytes())
    return h.hexdigest()


@dataclass
class TrainingData:
    """What the feature network is trained and measured on, with a description for printing."""

    images: torch.Tensor
    labels: torch.Tensor
    held_out_images: torch.Tensor
    held_out_labels: torch.Tensor
    trained_on: str
    held_out: str
    online: bool

    def key(self, seed: int) -> str:
        """Cache key: architecture and recipe version, seed, protocol and the data's contents."""
        parts = [ARCH_VERSION, f"seed={seed}", f"online={self.online}",
                 f"split={'' if self.online else f'{OFFLINE_N_HELDOUT}@{OFFLINE_SPLIT_SEED}'}",
                 _content_hash(self.images, self.labels), _content_hash(self.held_out_images, self.held_out_labels)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


def training_data(data_dir: str | os.PathLike | None = None) -> TrainingData:
    """The labelled data the feature network learns from, by the protocol in the module docstring."""
    train = data_mod.load_mnist(data_dir, split="train")
    if len(train) == 60_000 and "train split" in train.source:
        test = data_mod.load_mnist(data_dir, split="test")
        return TrainingData(train.images, train.labels, test.images, test.labels,
                            f"the {len(train):,} MNIST training images",
                            f"the {len(test):,} official MNIST test images",
                            online=True)
    ref, query = fixed_split(len(train), OFFLINE_N_HELDOUT, seed=OFFLINE_SPLIT_SEED)
    return TrainingData(train.images[ref], train.labels[ref], train.images[query], train.labels[query],
                        f"{len(ref):,} images of a fixed split (seed {OFFLINE_SPLIT_SEED}) of {train.source}",
                        f"the other {len(query):,} images of that split (held out)", online=False)


def chapter_data(data_dir: str | os.PathLike | None = None) -> tuple[TrainingData, FeatureNet]:
    """What an MNIST chapter trains on and is measured with: the split and the feature network.

    The GAN trains on ``split.images``, the feature network's training images, so that the
    held-out digits (``split.held_out_images``, also :func:`held_out_real`) stay unseen by
    both and can serve as the real side of FID and of any probe. Prints the loader's notice
    (once per process) and both descriptions with the data folder as ``<data_dir>``, and
    returns the split with those public descriptions.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        split = training_data(data_dir)
        net = _feature_net_for(split)          # the split just read: MNIST is loaded once
    split = dataclasses.replace(split, trained_on=data_mod.public_text(split.trained_on, data_dir),
                                held_out=data_mod.public_text(split.held_out, data_dir))
    print(data_mod.public_text(out.getvalue(), data_dir), end="")
    print(f"training images: {split.trained_on}\nheld out (never trained on): {split.held_out}")
    return split, net


def held_out_real(data_dir: str | os.PathLike | None = None) -> data_mod.ImageData:
    """Real digits the feature network never saw: the test split online, the held-out part offline."""
    td = training_data(data_dir)
    return data_mod.ImageData(td.held_out_images, td.held_out_labels, td.held_out)


def _cache_file(key: str) -> Path:
    return cache_dir() / f"feature_net_{ARCH_VERSION}_{key[:16]}.pt"


def _save_atomic(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_cached(path: Path, key: str) -> FeatureNet | None:
    """The cached network, or None (with a notice) if the file is corrupt or was trained on other data."""
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        info = dict(blob["info"])
        if info.get("key") != key:
            raise ValueError(f"it was trained on other data (key {str(info.get('key'))[:16]}, expected {key[:16]})")
        net = FeatureNet()
        net.load_state_dict(blob["state_dict"])
    except Exception as exc:  # unreadable, truncated, wrong keys or shapes, other data
        print(f"NOTICE: the cached feature network {path} is unusable ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:160] if str(exc) else 'no message'}); retraining it.")
        return None
    net.info = info
    net.eval()
    return net


def load_feature_net(data_dir: str | os.PathLike | None = None, *, seed: int = TRAIN_SEED,
                     retrain: bool = False, verbose: bool = True) -> FeatureNet:
    """The MNIST feature network: from the cache when it matches the data, else trained (and cached).

    Prints one line with its held-out accuracy and what it was trained on.
    """
    return _feature_net_for(training_data(data_dir), seed=seed, retrain=retrain, verbose=verbose)


def _feature_net_for(td: TrainingData, *, seed: int = TRAIN_SEED, retrain: bool = False,
                     verbose: bool = True) -> FeatureNet:
    """:func:`load_feature_net` for data already loaded (callers that need the split too read it once)."""
    key = td.key(seed)
    path = _cache_file(key)
    net = None if retrain else _load_cached(path, key)
    if net is None:
        net = train_feature_net(td.images, td.labels, td.held_out_images, td.held_out_labels,
                                seed=seed, verbose=verbose)
        net.info.update({"key": key, "trained_on": td.trained_on, "held_out": td.held_out})
        _save_atomic({"state_dict": net.state_dict(), "info": net.info}, path)
    if verbose:
        print(net.describe())
    return net


# ------------------------------------------------------------------ features and classes

@torch.no_grad()
def extract(net: FeatureNet, images: torch.Tensor, batch_size: int = 1000,
            device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, 128), logits (N, 10)) of checked images, in eval mode, returned on the CPU."""
    images = check_images(images)
    check_positive("batch_size", batch_size)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    was_training = net.training
    net.eval()
    feats, logits = [], []
    try:
        for i in range(0, len(images), batch_size):
            f = net.features(images[i:i + batch_size].to(device))
            feats.append(f.float().cpu())
            logits.append(net.head(f).float().cpu())
    finally:
        net.train(was_training)
    return torch.cat(feats), torch.cat(logits)


@torch.no_grad()
def classify_channels(net: FeatureNet, images: torch.Tensor, batch_size: int = 1000
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and confidences (N, C) of every channel classified on its own (Stacked MNIST: C = 3)."""
    images = check_images(images, channels=(1, 2, 3))
    n, c = images.shape[:2]
    _, logits = extract(net, images.reshape(n * c, 1, *IMAGE_SHAPE), batch_size)
    conf, labels = logits.softmax(1).max(1)
    return labels.view(n, c), conf.view(n, c)


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    logits = _check_features(logits, "logits")
    return logits.double().log_softmax(1)


def inception_score(logits: torch.Tensor) -> float:
    """Classifier Inception Score exp(E_x KL(p(y|x) || p(y))), p(y) the mean of p(y|x); 1 <= IS <= K."""
    logp = _log_probs(logits)
    p = logp.exp()
    log_marginal = p.mean(0).clamp_min(1e-300).log()
    kl = (p * (logp - log_marginal)).sum(1)
    return float(kl.mean().exp())


def recognisability(logits: torch.Tensor, threshold: float = CONFIDENCE) -> float:
    """Share of images whose most likely class has probability >= ``threshold``."""
    return float((_log_probs(logits).exp().max(1).values >= threshold).double().mean())


def class_shares(logits: torch.Tensor) -> torch.Tensor:
    """Share of images assigned to each class (argmax), shape (K,); sums to 1."""
    logits = _check_features(logits, "logits")
    return torch.bincount(logits.argmax(1), minlength=logits.shape[1]).double() / len(logits)


def snapshot_scores(net: FeatureNet, images: torch.Tensor, threshold: float = CONFIDENCE) -> dict[str, Any]:
    """The per-snapshot numbers (cheap: one forward pass), for curves over training.

    Keys: ``n``, ``recognisable`` (share with confidence >= ``threshold``), ``class_shares``
    (a list of K shares, argmax class), ``min_class_share`` and ``inception_score``.
    """
    _, logits = extract(net, images)
    shares = class_shares(logits)
    return {"n": len(images), "recognisable": recognisability(logits, threshold),
            "class_shares": shares.tolist(), "min_class_share": float(shares.min()),
            "inception_score": inception_score(logits)}


# ------------------------------------------------------------------ FID and KID (torchmetrics)

def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """FID between two feature sets: torchmetrics' ``FrechetInceptionDistance``, statistics in float64."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    real = _check_features(real_features, "real_features").double().cpu()
    fake = _check_features(fake_features, "fake_features").double().cpu()
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features have {real.shape[1]} columns but fake_features {fake.shape[1]}")
    if len(real) < 2 or len(fake) < 2:
        raise ValueError("FID needs at least 2 feature vectors on each side")
    metric = FrechetInceptionDistance(feature=_PrecomputedFeatures(real.shape[1]), normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


def kernel_distance(real_features: torch.Tensor, fake_features: torch.Tensor, subset_size: int = 1000,
                    subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """KID (unbiased MMD^2 with the cubic polynomial kernel) as (mean, std) over random subsets.

    torchmetrics' ``KernelInceptionDistance``; its subsets are drawn from the global RNG, which is
    seeded with ``seed`` inside a fork so that the caller's random stream is untouched.
    ``subset_size`` is capped at the smaller set's size.
    """
    from torchmetrics.image.kid import KernelInceptionDistance

    real = _check_features(real_features, "real_features").double().cpu()
    fake = _check_features(fake_features, "fake_features").double().cpu()
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError("KID needs at least 2 feature vectors on each side")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features in buffer"
        metric = KernelInceptionDistance(feature=_PrecomputedFeatures(real.shape[1]), subsets=subsets,
                                         subset_size=size, normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std)


# ------------------------------------------------------------------ precision, recall, density, coverage

def _sq_dists(a: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor) -> torch.Tensor:
    d = a.pow(2).sum(1, keepdim=True) + b_sq.unsqueeze(0) - 2.0 * (a @ b.T)
    return d.clamp_min_(0.0)


def kth_neighbour_sq_distances(x: torch.Tensor, ks: tuple[int, ...], max_entries: int = 2**22
                               ) -> dict[int, torch.Tensor]:
    """Squared distance of every row of ``x`` to its k-th nearest *other* row, for each k in ``ks``.

    As in the reference ``prdc`` code, the k-th neighbour is the (k+1)-th smallest distance
    including the row itself (an exact duplicate of a row counts as a neighbour at distance 0).
    """
    k_max = max(ks)
    if k_max + 1 > len(x):
        raise ValueError(f"k={k_max} needs at least {k_max + 1} points, got {len(x)}; use more samples")
    x_sq = x.pow(2).sum(1)
    rows = _block_rows(len(x), max_entries)
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for s in range(0, len(x), rows):
        d = _sq_dists(x[s:s + rows], x, x_sq).topk(k_max + 1, dim=1, largest=False).values
        for k in ks:
            out[k].append(d[:, k])
    return {k: torch.cat(v) for k, v in out.items()}


def precision_recall_density_coverage(real_features: torch.Tensor, fake_features: torch.Tensor,
                                      k_pr: int = 3, k_dc: int = 5, max_entries: int = 2**22,
                                      device: str | torch.device | None = None) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019, k = ``k_pr``) and density and
    coverage (Naeem et al. 2020, k = ``k_dc``) on torch, in float64.

    * precision: share of fakes inside some real point's k-NN ball;
    * recall: share of reals inside some fake point's k-NN ball;
    * density: mean number of real k-NN balls around a fake, divided by k (can exceed 1);
    * coverage: share of reals whose k-NN ball holds at least one fake.

    Distances are computed in blocks of real rows, at most ``max_entries`` at a time, so
    10,000 x 10,000 distances never sit in memory at once. Definitions and tie handling
    (strict ``<``) follow the reference ``prdc`` package.
    """
    check_positive("k_pr", k_pr)
    check_positive("k_dc", k_dc)
    real = _check_features(real_features, "real_features")
    fake = _check_features(fake_features, "fake_features")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_features have {real.shape[1]} columns but fake_features {fake.shape[1]}")
    device = torch.device(device) if device is not None else real.device
    real, fake = real.to(device, torch.float64), fake.to(device, torch.float64)
    r_real = kth_neighbour_sq_distances(real, (k_pr, k_dc), max_entries)
    r_fake = kth_neighbour_sq_distances(fake, (k_pr,), max_entries)[k_pr]
    fake_sq = fake.pow(2).sum(1)
    in_some_ball = torch.zeros(len(fake), dtype=torch.bool, device=device)
    balls_around = torch.zeros(len(fake), dtype=torch.float64, device=device)
    recalled = covered = 0
    rows = _block_rows(len(fake), max_entries)
    for s in range(0, len(real), rows):
        d = _sq_dists(real[s:s + rows], fake, fake_sq)                    # (b, n_fake)
        in_some_ball |= (d < r_real[k_pr][s:s + rows, None]).any(0)
        balls_around += (d < r_real[k_dc][s:s + rows, None]).sum(0)
        recalled += int((d < r_fake[None, :]).any(1).sum())
        covered += int((d.min(1).values < r_real[k_dc][s:s + rows]).sum())
    return {"precision": float(in_some_ball.double().mean()), "recall": recalled / len(real),
            "density": float(balls_around.mean()) / k_dc, "coverage": covered / len(real)}


# ------------------------------------------------------------------ one call

@dataclass
class Scores:
    """All metrics of one image set against a real reference set (generated or, for the floor, real)."""

    fid: float
    kid: float
    kid_std: float
    precision: float
    recall: float
    density: float
    coverage: float
    inception_score: float
    recognisable: float
    min_class_share: float
    class_shares: list[float] = field(default_factory=list)


_ROWS = (  # (attribute, label, format, better)
    ("fid", "FID", "{:.3f}", "lower"), ("kid", "KID (+- std over subsets)", "{:.3f}", "lower"),
    ("precision", "precision (k=3)", "{:.3f}", "higher"), ("recall", "recall (k=3)", "{:.3f}", "higher"),
    ("density", "density (k=5)", "{:.3f}", "~1"), ("coverage", "coverage (k=5)", "{:.3f}", "higher"),
    ("inception_score", "Inception Score (of 10)", "{:.2f}", "higher"),
    ("recognisable", f"recognisable (p >= {CONFIDENCE})", "{:.3f}", "higher"),
    ("min_class_share", "smallest class share", "{:.3f}", "~0.1"),
)


@dataclass
class Evaluation:
    """The record :func:`evaluate_generator` returns; ``print(result)`` shows the table."""

    n: int                   # generated images, and real images they are compared with
    n_floor: int             # size of each of the two disjoint real sets of the floor
    seed: int
    feature_accuracy: float
    feature_info: str
    generated: Scores
    real: Scores             # the floor: real vs disjoint real, at n_floor

    def table(self) -> str:
        """A plain-text table: each metric for the generator beside the real-vs-real floor."""
        head = f"{'metric':<28}{'generator':>16}{'real (floor)':>16}  better"
        lines = [f"N = {self.n:,} generated vs {self.n:,} real images; floor: {self.n_floor:,} real vs "
                 f"{self.n_floor:,} other real images; seed {self.seed}",
                 f"{self.feature_info}", head, "-" * len(head)]
        for attr, label, fmt, better in _ROWS:
            cells = []
            for scores in (self.generated, self.real):
                cell = fmt.format(getattr(scores, attr))
                if attr == "kid":   # KID is noisy at small N: its spread over subsets goes with it
                    cell += f" +- {scores.kid_std:.3f}"
                cells.append(cell)
            lines.append(f"{label:<28}{cells[0]:>16}{cells[1]:>16}  {better}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        return self.table()


Sampler = Callable[[int], torch.Tensor]


def _scores(real_f: torch.Tensor, fake_f: torch.Tensor, fake_logits: torch.Tensor, seed: int,
            device: torch.device) -> Scores:
    # KID subsets of at most half the set, so that its standard deviation over subsets means something
    kid, kid_std = kernel_distance(real_f, fake_f, subset_size=min(1000, max(2, len(fake_f) // 2)), seed=seed)
    prdc = precision_recall_density_coverage(real_f, fake_f, device=device)
    shares = class_shares(fake_logits)
    return Scores(fid=frechet_distance(real_f, fake_f), kid=kid, kid_std=kid_std, **prdc,
                  inception_score=inception_score(fake_logits), recognisable=recognisability(fake_logits),
                  min_class_share=float(shares.min()), class_shares=[round(float(s), 4) for s in shares])


@torch.no_grad()
def generate(generator: nn.Module | Sampler, n: int, *, seed: int = 0, latent_dim: int | None = None,
             noise: str = "normal", batch_size: int = 500, device: str | torch.device | None = None
             ) -> torch.Tensor:
    """``n`` checked images from a generator module (fed z from ``noise``) or a sampler ``sample(n)``.

    A module is put in eval mode (BatchNorm uses its running statistics) and its mode restored.
    Noise comes from its own generator seeded with ``seed``: the same z for every call.
    """
    check_positive("n", n)
    if isinstance(generator, nn.Module):
        latent_dim = latent_dim or getattr(generator, "latent_dim", None)
        if not latent_dim:
            raise ValueError("latent_dim is needed: the generator has no latent_dim attribute; "
                             "pass latent_dim=... or a sampler callable sample(n) -> images")
        params = list(generator.parameters())
        dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
        if noise not in ("normal", "uniform"):
            raise ValueError(f"noise must be 'normal' or 'uniform', got {noise!r}")
        g = torch.Generator().manual_seed(seed)
        was_training = generator.training
        generator.eval()
        try:
            out = []
            for s in range(0, n, batch_size):
                b = min(batch_size, n - s)
                if noise == "normal":
                    z = torch.randn(b, latent_dim, generator=g)
                else:
                    z = torch.rand(b, latent_dim, generator=g).mul_(2).sub_(1)
                out.append(generator(z.to(dev)).float().cpu())
        finally:
            generator.train(was_training)
        images = torch.cat(out)
    elif callable(generator):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            images = generator(n)
    else:
        raise ValueError(f"generator must be an nn.Module taking z or a callable sample(n) -> images, "
                         f"got {type(generator).__name__}")
    if isinstance(images, torch.Tensor) and images.dim() == 2 and images.shape[1] == 784:
        images = images.view(-1, 1, *IMAGE_SHAPE)
    images = check_images(images, "generated images")
    if len(images) != n:
        raise ValueError(f"the generator returned {len(images)} images, expected n={n}")
    return images


def evaluate_generator(generator: nn.Module | Sampler, real_images: torch.Tensor, n: int = 1000, *,
                       feature_net: FeatureNet | None = None, seed: int = 0, latent_dim: int | None = None,
                       noise: str = "normal", device: str | torch.device | None = None,
                       data_dir: str | os.PathLike | None = None, verbose: bool = False) -> Evaluation:
    """All metrics of ``n`` generated images against ``n`` real ones, with the real-vs-real floor.

    ``generator``: a module mapping z (B, latent_dim) to images in [-1, 1] of shape (B, 1, 28, 28)
    (``latent_dim`` defaults to its attribute of that name, ``noise`` is ``normal`` or
    ``uniform``), or any callable ``sample(n) -> images``. ``real_images``: (M, 1, 28, 28) in
    [-1, 1], ideally digits the feature network did not train on (:func:`held_out_real`).
    A seeded permutation picks ``n`` of them as the reference set; the floor compares two
    disjoint real sets of ``n_floor = min(n, M // 2)`` images each (equal to ``n`` when
    M >= 2n; otherwise the table says so through ``n_floor``).

    ``device``: where the generator, the feature network (moved there) and the neighbour
    searches run; by default the feature network's device. ``seed`` fixes z, the choice of
    real images and the KID subsets: the same call gives the same numbers.
    """
    check_positive("n", n)
    real_images = check_images(real_images, "real_images")
    if n > len(real_images):
        raise ValueError(f"n={n} is larger than the real set ({len(real_images):,} images); "
                         f"choose n <= {len(real_images):,} or pass more real images")
    if n < 6:
        raise ValueError(f"n={n} is too small: precision/recall with k=5 need n >= 6; choose a larger n")
    net = feature_net if feature_net is not None else load_feature_net(data_dir, verbose=verbose)
    if device is not None:
        net.to(device)       # the feature network (and precision/recall) run where the generator does
    dev = next(net.parameters()).device
    fake = generate(generator, n, seed=seed, latent_dim=latent_dim, noise=noise, device=device)
    perm = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed + 1))
    n_floor = min(n, len(real_images) // 2)
    ref_f, ref_logits = extract(net, real_images[perm[:n]], device=dev)
    fake_f, fake_logits = extract(net, fake, device=dev)
    other = real_images[perm[len(real_images) - n_floor:]]     # disjoint from the first n_floor
    other_f, other_logits = extract(net, other, device=dev)
    generated = _scores(ref_f, fake_f, fake_logits, seed, dev)
    floor = _scores(ref_f[:n_floor], other_f, other_logits, seed, dev)
    result = Evaluation(n=n, n_floor=n_floor, seed=seed, feature_accuracy=net.accuracy,
                        feature_info=net.describe(), generated=generated, real=floor)
    if verbose:
        print(result.table())
    return result


def real_floor(real_images: torch.Tensor, n: int, *, feature_net: FeatureNet | None = None, seed: int = 0,
               data_dir: str | os.PathLike | None = None) -> Scores:
    """Only the floor: two disjoint sets of ``n`` real images against each other (needs 2n images)."""
    real_images = check_images(real_images, "real_images")
    if 2 * n > len(real_images):
        raise ValueError(f"n={n} needs 2n = {2 * n:,} real images, got {len(real_images):,}; choose n <= "
                         f"{len(real_images) // 2:,}")
    net = feature_net if feature_net is not None else load_feature_net(data_dir, verbose=False)
    dev = next(net.parameters()).device
    perm = torch.randperm(len(real_images), generator=torch.Generator().manual_seed(seed + 1))
    a_f, _ = extract(net, real_images[perm[:n]], device=dev)
    b_f, b_logits = extract(net, real_images[perm[n:2 * n]], device=dev)
    return _scores(a_f, b_f, b_logits, seed, dev)


__all__ = [
    "ARCH_VERSION", "FeatureNet", "FeatureExtractor", "Scores", "Evaluation", "cache_dir", "check_images",
    "chapter_data", "class_shares", "classify_channels", "evaluate_generator", "extract", "frechet_distance", "generate",
    "held_out_real", "inception_score", "kernel_distance", "kth_neighbour_sq_distances", "load_feature_net",
    "precision_recall_density_coverage", "real_floor", "recognisability", "snapshot_scores",
    "train_feature_net", "training_data",
]
