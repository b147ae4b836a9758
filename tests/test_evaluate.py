"""gan_utils.evaluate: each metric against a closed form or a reference implementation, the
feature network on real held-out digits, its cache, and the refusals of bad input.

The feature network is trained at most once per cache folder (``$GAN_CACHE_DIR`` or ``.cache/``);
the cache tests copy it into a temporary folder and replace training by a one-epoch stub.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from gan_utils import evaluate as ev
from gan_utils import models


# ------------------------------------------------------------------ helpers

def _exact_gaussian_sample(mean: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """n points whose sample mean and unbiased sample covariance are exactly ``mean`` and ``cov``."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, len(mean), generator=g, dtype=torch.float64)
    z = z - z.mean(0)
    s = z.T @ z / (n - 1)
    z = z @ torch.linalg.inv(torch.linalg.cholesky(s)).T          # sample covariance now I
    return mean + z @ torch.linalg.cholesky(cov).T


def _random_cov(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _closed_form_fid(m1, c1, m2, c2) -> float:  # type: ignore[no-untyped-def]
    from scipy.linalg import sqrtm

    covmean = sqrtm(c1.numpy() @ c2.numpy()).real
    return float(((m1 - m2) ** 2).sum() + torch.trace(c1) + torch.trace(c2) - 2 * np.trace(covmean))


# ------------------------------------------------------------------ FID and KID

def test_fid_equals_the_closed_form_for_diagonal_gaussians() -> None:
    # Diagonal covariances commute: FID = |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2, by hand.
    d = 6
    m1, m2 = torch.zeros(d, dtype=torch.float64), torch.arange(d, dtype=torch.float64) / 4
    a, b = torch.linspace(0.5, 3, d, dtype=torch.float64), torch.linspace(2, 0.2, d, dtype=torch.float64)
    x = _exact_gaussian_sample(m1, torch.diag(a), 400, seed=0)
    y = _exact_gaussian_sample(m2, torch.diag(b), 300, seed=1)
    expected = float(((m1 - m2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert ev.frechet_distance(x, y) == pytest.approx(expected, rel=1e-7)


def test_fid_equals_the_closed_form_for_general_gaussians() -> None:
    d = 10
    m1 = torch.randn(d, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    m2 = m1 + 0.3
    c1, c2 = _random_cov(d, 1), _random_cov(d, 2)
    x, y = _exact_gaussian_sample(m1, c1, 500, 3), _exact_gaussian_sample(m2, c2, 500, 4)
    expected = _closed_form_fid(m1, c1, m2, c2)
    assert expected > 1.0
    assert ev.frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)
    assert ev.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # symmetric, and float32 input gives the same (statistics are float64 inside)
    assert ev.frechet_distance(y, x) == pytest.approx(expected, rel=1e-6)
    assert ev.frechet_distance(x.float(), y.float()) == pytest.approx(expected, rel=1e-4)


def test_kid_is_near_zero_for_one_distribution_positive_for_two_and_seeded() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(600, 8, generator=g), torch.randn(600, 8, generator=g)
    far = torch.randn(600, 8, generator=g) + 1.0
    same, _ = ev.kernel_distance(a, b, subset_size=300, subsets=10)
    diff, diff_std = ev.kernel_distance(a, far, subset_size=300, subsets=10)
    assert abs(same) < 0.02 < diff
    assert diff_std > 0
    state = torch.get_rng_state()
    assert ev.kernel_distance(a, far, 300, 10, seed=3) == ev.kernel_distance(a, far, 300, 10, seed=3)
    assert torch.equal(state, torch.get_rng_state())          # the caller's random stream is untouched


def test_kid_matches_the_unbiased_mmd_formula_on_one_subset() -> None:
    # subset_size = set size: every subset is the whole set, so KID is the plain unbiased MMD^2
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 4, generator=g, dtype=torch.float64), torch.randn(50, 4, generator=g, dtype=torch.float64) + 0.5
    k = lambda u, v: (u @ v.T / 4 + 1) ** 3  # noqa: E731
    m = 50
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = ((kxx.sum() - kxx.trace()) + (kyy.sum() - kyy.trace())) / (m * (m - 1)) - 2 * kxy.mean()
    mean, std = ev.kernel_distance(x, y, subset_size=50, subsets=3)
    assert mean == pytest.approx(float(expected), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------ Inception Score

def test_inception_score_is_k_for_one_confident_image_per_class() -> None:
    assert ev.inception_score(50.0 * torch.eye(10)) == pytest.approx(10.0, rel=1e-6)
    assert ev.inception_score(50.0 * torch.eye(10).repeat(7, 1)) == pytest.approx(10.0, rel=1e-6)


def test_inception_score_is_one_for_a_single_repeated_image() -> None:
    logits = torch.randn(1, 10).repeat(100, 1)
    assert ev.inception_score(logits) == pytest.approx(1.0, abs=1e-9)


def test_inception_score_bounds_and_uncertain_predictions() -> None:
    g = torch.Generator().manual_seed(0)
    for scale in (0.1, 1.0, 5.0, 30.0):
        score = ev.inception_score(scale * torch.randn(500, 10, generator=g))
        assert 1.0 - 1e-9 <= score <= 10.0 + 1e-9
    assert ev.inception_score(torch.zeros(20, 10)) == pytest.approx(1.0)      # uniform p(y|x): no information
    # half the images certain of class 0, half of class 1: IS = 2
    logits = torch.full((10, 10), -50.0)
    logits[:5, 0] = logits[5:, 1] = 50.0
    assert ev.inception_score(logits) == pytest.approx(2.0, rel=1e-6)


def test_recognisability_and_class_shares() -> None:
    logits = torch.zeros(4, 10)
    logits[0, 3] = 10.0     # p = e^10 / (e^10 + 9) > 0.999: confident
    logits[1, 3] = 1.0      # p = e / (e + 9) = 0.23: not confident
    logits[2, 5] = 10.0
    logits[3, 7] = 2.0      # p = 0.45
    assert ev.recognisability(logits) == pytest.approx(0.5)
    shares = ev.class_shares(logits)
    assert shares.tolist() == pytest.approx([0, 0, 0, 0.5, 0, 0.25, 0, 0.25, 0, 0])


# ------------------------------------------------------------------ precision, recall, density, coverage

@pytest.mark.parametrize("n_real, n_fake, d, shift, seed", [(200, 200, 5, 0.0, 0), (300, 150, 8, 0.5, 1),
                                                            (150, 250, 3, 1.5, 2)])
def test_prdc_matches_the_reference_package(n_real: int, n_fake: int, d: int, shift: float, seed: int,
                                            capsys: pytest.CaptureFixture) -> None:
    prdc = pytest.importorskip("prdc")
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n_real, d))
    fake = rng.normal(size=(n_fake, d)) * 1.2 + shift
    ref_pr = prdc.compute_prdc(real, fake, nearest_k=3)
    ref_dc = prdc.compute_prdc(real, fake, nearest_k=5)
    # max_entries small: many blocks, so the blockwise bookkeeping is exercised
    ours = ev.precision_recall_density_coverage(torch.from_numpy(real), torch.from_numpy(fake), max_entries=1000)
    assert ours["precision"] == pytest.approx(ref_pr["precision"], abs=1e-12)
    assert ours["recall"] == pytest.approx(ref_pr["recall"], abs=1e-12)
    assert ours["density"] == pytest.approx(ref_dc["density"], abs=1e-12)
    assert ours["coverage"] == pytest.approx(ref_dc["coverage"], abs=1e-12)
    assert 0 < ours["precision"] < 1 or shift == 0.0


def test_prdc_block_size_does_not_change_the_result() -> None:
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(257, 6, generator=g), torch.randn(199, 6, generator=g) + 0.3
    big = ev.precision_recall_density_coverage(real, fake)
    tiny = ev.precision_recall_density_coverage(real, fake, max_entries=1)
    assert big == tiny


def test_prdc_identical_sets_and_a_single_repeated_real_point() -> None:
    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    same = ev.precision_recall_density_coverage(x, x.clone())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    assert same["density"] == pytest.approx(1.0)
    collapsed = ev.precision_recall_density_coverage(x, x[:1].repeat(300, 1))
    assert collapsed["precision"] == pytest.approx(1.0)
    assert collapsed["recall"] <= 0.01
    assert collapsed["coverage"] < 0.05          # about k / N: only the balls around x[0]


# ------------------------------------------------------------------ bad input

def test_bad_images_are_refused_with_the_fix() -> None:
    ok = torch.zeros(2, 1, 28, 28)
    assert ev.check_images(ok) is not None
    with pytest.raises(ValueError, match=r"shape \(2, 28, 28\).*unsqueeze\(1\)"):
        ev.check_images(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"shape \(2, 1, 32, 32\)"):
        ev.check_images(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"got values in \[0, 255\].*2 \* x - 1"):
        ev.check_images(torch.arange(2 * 784).remainder(256).float().view(2, 1, 28, 28))
    with pytest.raises(ValueError, match="empty"):
        ev.check_images(torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match="NaN or infinite values in 1 of 2"):
        ev.check_images(torch.cat([ok[:1], torch.full((1, 1, 28, 28), float("nan"))]))
    with pytest.raises(ValueError, match="dtype torch.uint8"):
        ev.check_images(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        ev.check_images(np.zeros((2, 1, 28, 28)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"shape \(2, 3, 28, 28\)"):
        ev.check_images(torch.zeros(2, 3, 28, 28))          # 3 channels only where allowed
    assert ev.check_images(torch.zeros(2, 3, 28, 28), channels=(1, 3)).shape == (2, 3, 28, 28)


class _TinyNet(ev.FeatureNet):
    """An untrained feature network: enough for the refusal tests, no training needed."""

    def __init__(self) -> None:
        super().__init__()
        self.info = {"arch": "test", "accuracy": 0.0, "trained_on": "nothing", "held_out": "nothing"}


def test_evaluate_generator_refuses_bad_requests() -> None:
    net, real = _TinyNet(), torch.rand(100, 1, 28, 28) * 2 - 1
    with pytest.raises(ValueError, match=r"n=101 is larger than the real set \(100 images\); choose n <= 100"):
        ev.evaluate_generator(lambda n: real[:n], real, n=101, feature_net=net)
    with pytest.raises(ValueError, match="generated images is empty"):
        ev.evaluate_generator(lambda n: real[:0], real, n=50, feature_net=net)
    with pytest.raises(ValueError, match="returned 10 images, expected n=50"):
        ev.evaluate_generator(lambda n: real[:10], real, n=50, feature_net=net)
    with pytest.raises(ValueError, match="NaN"):
        ev.evaluate_generator(lambda n: torch.full((n, 1, 28, 28), float("nan")), real, n=50, feature_net=net)
    with pytest.raises(ValueError, match=r"got values in \[.*, 2\]"):
        ev.evaluate_generator(lambda n: real[:n] + 1, real, n=50, feature_net=net)
    with pytest.raises(ValueError, match="latent_dim"):
        ev.evaluate_generator(nn.Linear(3, 784), real, n=50, feature_net=net)
    with pytest.raises(ValueError, match="real_images"):
        ev.evaluate_generator(lambda n: real[:n], real[:, :, :20], n=50, feature_net=net)


# ------------------------------------------------------------------ the trained network on real digits

@pytest.fixture(scope="session")
def feature_net(mnist_dir: Path) -> ev.FeatureNet:
    return ev.load_feature_net(mnist_dir)


@pytest.fixture(scope="session")
def held_out(mnist_dir: Path):  # type: ignore[no-untyped-def]
    return ev.held_out_real(mnist_dir)


def test_feature_network_accuracy_meets_its_target(feature_net: ev.FeatureNet, held_out, mnist_dir: Path) -> None:  # type: ignore[no-untyped-def]
    online = ev.training_data(mnist_dir).online
    assert feature_net.accuracy >= (0.99 if online else 0.98), feature_net.describe()
    # the stored accuracy is what the network does now on the held-out digits
    _, logits = ev.extract(feature_net, held_out.images)
    assert float((logits.argmax(1) == held_out.labels).float().mean()) == pytest.approx(feature_net.accuracy)
    assert "accuracy" in feature_net.describe() and "trained on" in feature_net.describe()


def test_real_held_out_digits_score_as_real_digits(feature_net: ev.FeatureNet, held_out) -> None:  # type: ignore[no-untyped-def]
    s = ev.snapshot_scores(feature_net, held_out.images)
    assert 9.0 < s["inception_score"] < 10.0
    assert s["recognisable"] > 0.9
    assert 0.07 < s["min_class_share"] < 0.1
    assert len(s["class_shares"]) == 10 and sum(s["class_shares"]) == pytest.approx(1.0)
    true_shares = torch.bincount(held_out.labels, minlength=10).double() / len(held_out.labels)
    assert max(abs(a - b) for a, b in zip(s["class_shares"], true_shares.tolist())) < 0.01   # 99% accurate net
    assert s["min_class_share"] == min(s["class_shares"])


def test_chapter_data_keeps_held_out_digits_out_of_training_and_hides_paths(
        feature_net: ev.FeatureNet, mnist_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    split, net = ev.chapter_data(mnist_dir)
    out = capsys.readouterr().out
    assert str(mnist_dir) not in out and str(mnist_dir) not in split.trained_on + split.held_out
    assert "training images:" in out and "held out (never trained on):" in out
    assert net.accuracy == feature_net.accuracy
    # no held-out digit is among the training images (compared as exact pixel rows)
    train_rows = {hash(r.numpy().tobytes()) for r in split.images.flatten(1)}
    assert not any(hash(r.numpy().tobytes()) in train_rows for r in split.held_out_images.flatten(1))
    assert torch.equal(split.held_out_images, ev.held_out_real(mnist_dir).images)


def test_classify_channels_reads_stacked_digits(feature_net: ev.FeatureNet, held_out) -> None:  # type: ignore[no-untyped-def]
    x, y = held_out.images[:300], held_out.labels[:300]
    stacked = torch.cat([x[:100], x[100:200], x[200:]], dim=1)             # (100, 3, 28, 28)
    labels, conf = ev.classify_channels(feature_net, stacked)
    assert labels.shape == conf.shape == (100, 3)
    truth = torch.stack([y[:100], y[100:200], y[200:]], dim=1)
    assert float((labels == truth).float().mean()) > 0.97
    assert bool(((conf > 0) & (conf <= 1)).all())


def test_evaluate_generator_on_real_digits_a_collapsed_and_a_noise_generator(feature_net: ev.FeatureNet,
                                                                             held_out) -> None:  # type: ignore[no-untyped-def]
    real = held_out.images
    n = 400
    # a "generator" that returns other real digits than the reference ones
    perm = torch.randperm(len(real), generator=torch.Generator().manual_seed(1))  # same as evaluate's, seed 0
    others = real[perm[len(real) - n:]]
    good = ev.evaluate_generator(lambda k: others[:k], real, n=n, feature_net=feature_net)
    assert good.n == good.n_floor == n
    assert good.generated.fid == pytest.approx(good.real.fid, rel=1e-9)     # it *is* the floor's second set
    collapsed = ev.evaluate_generator(lambda k: real[:1].repeat(k, 1, 1, 1), real, n=n, feature_net=feature_net)
    assert collapsed.generated.inception_score == pytest.approx(1.0, abs=1e-6)
    assert collapsed.generated.recall == 0.0 and collapsed.generated.coverage < 0.05
    assert collapsed.generated.min_class_share == 0.0
    assert collapsed.generated.fid > 20 * good.generated.fid
    noise = ev.evaluate_generator(lambda k: torch.rand(k, 1, 28, 28) * 2 - 1, real, n=n, feature_net=feature_net)
    assert noise.generated.precision < 0.05 and noise.generated.fid > 20 * good.generated.fid
    assert noise.generated.kid > 10 * max(good.generated.kid, 1e-3)
    table = good.table()
    assert f"N = {n:,} generated vs {n:,} real" in table and "real (floor)" in table and "accuracy" in table
    assert good.feature_accuracy == feature_net.accuracy and good.seed == 0


def test_evaluate_generator_with_a_module_restores_its_mode_and_is_reproducible(feature_net: ev.FeatureNet,
                                                                                held_out) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    g = models.DCGANGenerator(latent_dim=16, width=8)
    g.train()
    state = torch.get_rng_state()
    a = ev.evaluate_generator(g, held_out.images, n=300, feature_net=feature_net, seed=4)
    assert g.training                                               # mode restored
    assert torch.equal(state, torch.get_rng_state())                # caller's RNG untouched
    b = ev.evaluate_generator(g, held_out.images, n=300, feature_net=feature_net, seed=4)
    assert a == b
    imgs = ev.generate(g, 5, seed=4, noise="uniform")
    assert imgs.shape == (5, 1, 28, 28) and not torch.equal(imgs, ev.generate(g, 5, seed=4))


def test_floor_needs_two_disjoint_sets(feature_net: ev.FeatureNet, held_out) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="needs 2n"):
        ev.real_floor(held_out.images[:100], 60, feature_net=feature_net)
    small = ev.evaluate_generator(lambda k: held_out.images[:k], held_out.images[:100], n=80, feature_net=feature_net)
    assert small.n == 80 and small.n_floor == 50


# ------------------------------------------------------------------ training and the cache

def test_training_is_deterministic(held_out) -> None:  # type: ignore[no-untyped-def]
    x, y = held_out.images[:512], held_out.labels[:512]
    a = ev.train_feature_net(x, y, x[:64], y[:64], epochs=1, verbose=False)
    b = ev.train_feature_net(x, y, x[:64], y[:64], epochs=1, verbose=False)
    c = ev.train_feature_net(x, y, x[:64], y[:64], epochs=1, seed=1, verbose=False)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.state_dict()["head.weight"], c.state_dict()["head.weight"])


def test_cache_is_keyed_reused_and_a_corrupt_file_is_retrained(feature_net: ev.FeatureNet, mnist_dir: Path,
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    key = ev.training_data(mnist_dir).key(ev.TRAIN_SEED)
    source = ev._cache_file(key)
    assert source.is_file() and mnist_dir not in source.parents          # never the data folder
    monkeypatch.setenv("GAN_CACHE_DIR", str(tmp_path))
    target = ev._cache_file(key)
    assert target.parent == tmp_path
    shutil.copy(source, target)
    calls: list[int] = []
    real_train = ev.train_feature_net

    def quick_train(images, labels, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)                      # one epoch on 256 images: the cache logic, not the accuracy
        return real_train(images[:256], labels[:256], *args, **{**kwargs, "epochs": 1})

    monkeypatch.setattr(ev, "train_feature_net", quick_train)
    capsys.readouterr()
    again = ev.load_feature_net(mnist_dir)                                # from the copy: no training
    assert not calls and again.accuracy == feature_net.accuracy
    assert "accuracy" in capsys.readouterr().out                          # printed where it is used
    target.write_bytes(b"not a checkpoint")
    ev.load_feature_net(mnist_dir)
    out = capsys.readouterr().out
    assert calls and "NOTICE" in out and "unusable" in out and "retraining" in out
    assert ev.load_feature_net(mnist_dir, verbose=False).info["epochs"] == 1   # the retrained one was cached
    blob = torch.load(target, weights_only=True)
    blob["info"]["key"] = "0" * 64                                        # trained on other data
    torch.save(blob, target)
    calls.clear()
    ev.load_feature_net(mnist_dir)
    out = capsys.readouterr().out
    assert calls and "trained on other data" in out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_cache_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GAN_CACHE_DIR", raising=False)
    assert ev.cache_dir() == Path(ev.__file__).resolve().parent.parent / ".cache"
    monkeypatch.setenv("GAN_CACHE_DIR", str(tmp_path))
    assert ev.cache_dir() == tmp_path


def test_feature_extractor_plugs_into_torchmetrics(feature_net: ev.FeatureNet, held_out) -> None:  # type: ignore[no-untyped-def]
    from torchmetrics.image.fid import FrechetInceptionDistance

    x = held_out.images[:200]
    metric = FrechetInceptionDistance(feature=ev.FeatureExtractor(feature_net).eval(), normalize=True)
    metric.update(x[:100], real=True)
    metric.update(x[100:], real=False)
    f, _ = ev.extract(feature_net, x)
    assert float(metric.compute()) == pytest.approx(ev.frechet_distance(f[:100], f[100:]), rel=1e-4)


# ------------------------------------------------------------------ the checked cell of book/evaluation.md

def _checked_cell(page: Path) -> tuple[str, str]:
    """The ```python block of the page that is followed by a ```text block (its printed output)."""
    import re

    found = re.findall(r"```python\n(.*?)```\n\n```text\n(.*?)```", page.read_text(), flags=re.S)
    assert len(found) == 1, f"expected one checked python cell with its output in {page}, found {len(found)}"
    return found[0]


def test_the_inception_score_bounds_cell_of_the_evaluation_page(repo_root: Path) -> None:
    import contextlib
    import io

    code, expected = _checked_cell(repo_root / "book" / "evaluation.md")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "book/evaluation.md", "exec"), {})
    assert out.getvalue() == expected
    assert "IS = 10.0000" in expected and "IS = 1.0000" in expected and "True" in expected
