"""The comparison chapter's building blocks on hand-built inputs: mixtures, mode metrics,
Stacked MNIST, and the resumable results table."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from gan_utils import comparison, mixtures, recipes, stacked


# ------------------------------------------------------------------ 2D mixtures

def test_ring_has_eight_distinct_modes_on_the_unit_circle() -> None:
    c = mixtures.mixture_centers("ring")
    assert c.shape == (8, 2)
    assert len({(round(x, 6), round(y, 6)) for x, y in c.tolist()}) == 8   # linspace(0, 2 pi, 8) gives 7
    assert torch.allclose(c.norm(dim=1), torch.ones(8), atol=1e-6)
    angles = torch.atan2(c[:, 1], c[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles, torch.arange(8) * (2 * math.pi / 8), atol=1e-6)
    assert mixtures.MIXTURE_STD["ring"] == 0.01


def test_grid_has_25_modes_at_even_coordinates() -> None:
    c = mixtures.mixture_centers("grid")
    assert c.shape == (25, 2)
    assert {tuple(p) for p in c.tolist()} == {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert mixtures.MIXTURE_STD["grid"] == 0.05


def test_mixture_batches_are_pure_functions_of_seed_and_k() -> None:
    a, b = mixtures.MixtureBatches("ring", 64, seed=3), mixtures.MixtureBatches("ring", 64, seed=3)
    assert torch.equal(a.batch(5)[0], b.batch(5)[0])
    assert not torch.equal(a.batch(5)[0], a.batch(6)[0])
    assert a.batch(0)[0].shape == (64, 2) and a.batch_size == 64
    with pytest.raises(ValueError):
        a.batch(-1)
    with pytest.raises(ValueError, match="ring"):
        mixtures.MixtureBatches("circle", 8)


def test_real_samples_score_perfectly() -> None:
    for name, k in (("ring", 8), ("grid", 25)):
        pts = mixtures.sample_mixture(name, 20_000, torch.Generator().manual_seed(0))
        m = mixtures.mode_metrics(pts, name)
        assert m.modes == k
        assert m.high_quality > 0.98        # a 2D Gaussian puts 98.9% within 3 std
        assert m.reverse_kl < 0.01


def test_mode_metrics_on_hand_built_points() -> None:
    c = mixtures.mixture_centers("ring")
    # 6 points on mode 0, 2 on mode 1, one 0.02 away from mode 2 (within 3 std), one 0.05 away from
    # mode 3 (5 std: low quality), one at the origin (low quality)
    pts = torch.cat([c[0].repeat(6, 1), c[1].repeat(2, 1), (c[2] + torch.tensor([0.02, 0.0]))[None],
                     (c[3] + torch.tensor([0.0, 0.05]))[None], torch.zeros(1, 2)])
    m = mixtures.mode_metrics(pts, "ring")
    assert m.modes == 3
    assert m.counts[:4] == (6, 2, 1, 0)
    assert m.high_quality == pytest.approx(9 / 11)
    p = torch.tensor([6, 2, 1]) / 9
    assert m.reverse_kl == pytest.approx(float((p * (p * 8).log()).sum()))


def test_mode_metrics_limits() -> None:
    c = mixtures.mixture_centers("grid")
    one = mixtures.mode_metrics(c[7].repeat(50, 1), "grid")
    assert (one.modes, one.high_quality) == (1, 1.0)
    assert one.reverse_kl == pytest.approx(math.log(25))       # all mass on one mode
    every = mixtures.mode_metrics(c.repeat(4, 1), "grid")
    assert (every.modes, every.reverse_kl) == (25, pytest.approx(0.0))
    none = mixtures.mode_metrics(torch.full((10, 2), 1.0), "grid")   # halfway between centres
    assert none.modes == 0 and none.high_quality == 0.0 and math.isnan(none.reverse_kl)
    edge = mixtures.mode_metrics(torch.tensor([[1.0 + 3 * 0.01 - 1e-6, 0.0], [1.0 + 3 * 0.01 + 1e-4, 0.0]]), "ring")
    assert edge.high_quality == 0.5                               # "within 3 std" on either side
    with pytest.raises(ValueError):
        mixtures.mode_metrics(torch.zeros(0, 2), "ring")
    with pytest.raises(ValueError, match="NaN"):
        mixtures.mode_metrics(torch.tensor([[float("nan"), 0.0]]), "ring")


# ------------------------------------------------------------------ Stacked MNIST

def test_stack_images_puts_digit_idx_c_in_channel_c() -> None:
    images = torch.arange(5, dtype=torch.float32).view(5, 1, 1, 1).expand(5, 1, 28, 28).clone()
    labels = torch.tensor([7, 1, 4, 0, 9])
    idx = torch.tensor([[0, 1, 2], [4, 4, 3], [2, 0, 1]])
    out = stacked.stack_images(images, idx)
    assert out.shape == (3, 3, 28, 28)
    assert out[:, :, 0, 0].tolist() == idx.float().tolist()
    assert stacked.stack_labels(labels, idx).tolist() == [[7, 1, 4], [9, 9, 0], [4, 7, 1]]
    assert stacked.triple_modes(stacked.stack_labels(labels, idx)).tolist() == [714, 990, 471]


def test_stacked_batches_draw_channels_independently_and_reproducibly() -> None:
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 28, 28).clone()
    b = stacked.StackedMNISTBatches(images, 4000, seed=1)
    x = b.batch(0)[0]
    assert x.shape == (4000, 3, 28, 28) and b.batch_size == 4000
    assert torch.equal(x, stacked.StackedMNISTBatches(images, 4000, seed=1).batch(0)[0])
    assert not torch.equal(x, b.batch(1)[0])
    ids = x[:, :, 0, 0].long()
    modes = stacked.triple_modes(ids)
    assert len(modes.unique()) > 950                   # 1,000 equally likely triples, 4,000 draws
    assert not bool((ids[:, 0] == ids[:, 1]).all())    # channels differ: drawn independently
    with pytest.raises(ValueError):
        stacked.StackedMNISTBatches(images.expand(10, 3, 28, 28), 4)


def test_stacked_mode_metrics_on_hand_built_triples() -> None:
    every = torch.tensor([[a, b, c] for a in range(10) for b in range(10) for c in range(10)])
    m = stacked.stacked_mode_metrics(every)
    assert (m.modes, m.n) == (1000, 1000) and m.kl == pytest.approx(0.0, abs=1e-12)
    m = stacked.stacked_mode_metrics(torch.tensor([[1, 2, 3]] * 30))
    assert m.modes == 1 and m.kl == pytest.approx(math.log(1000))
    m = stacked.stacked_mode_metrics(torch.tensor([[1, 2, 3]] * 3 + [[0, 0, 0]]))
    p = torch.tensor([0.75, 0.25])
    assert m.modes == 2 and m.kl == pytest.approx(float((p * (p * 1000).log()).sum()))
    with pytest.raises(ValueError):
        stacked.triple_modes(torch.tensor([[1, 2, 10]]))
    with pytest.raises(ValueError):
        stacked.triple_modes(torch.tensor([[1, 2]]))


# ------------------------------------------------------------------ the results table

def _row(experiment: str, model: str, seed: int, **metrics: float) -> dict:
    return {"experiment": experiment, "model": model, "seed": seed, "config": "abc", "profile": "smoke", **metrics}


def test_results_table_columns_and_round_trip(tmp_path) -> None:
    table = comparison.ResultsTable(tmp_path)
    table.put(_row("ring", "wgan", 1, modes=8, n_modes=8, high_quality=0.9, reverse_kl=0.01, settings={"steps": 3}))
    table.put(_row("mnist", "dcgan", 0, fid=12.5, floor_fid=1.0, n_eval=100))
    csv_path, json_path = table.write()
    rows = comparison.read_csv(csv_path)
    assert list(rows[0]) == list(comparison.COLUMNS)
    assert comparison.COLUMNS[:3] == ("experiment", "model", "seed")
    for col in ("modes", "high_quality", "reverse_kl", "kl", "fid", "kid", "precision", "recall", "density",
                "coverage", "inception_score", "floor_fid", "train_s", "config", "profile", "device", "settings"):
        assert col in comparison.COLUMNS
    assert [(r["experiment"], r["model"], r["seed"]) for r in rows] == [("mnist", "dcgan", "0"), ("ring", "wgan", "1")]
    assert rows[1]["modes"] == "8" and rows[0]["modes"] == "" and rows[1]["settings"] == '{"steps": 3}'
    assert table.get("ring", "wgan", 1, "abc")["high_quality"] == 0.9
    assert table.get("ring", "wgan", 2, "abc") is None
    with pytest.raises(ValueError, match="unknown columns"):
        table.put(_row("ring", "wgan", 1, typo=1.0))


def test_pending_jobs_skip_finished_rows_and_other_settings_do_not(tmp_path) -> None:
    s = {"steps": 3, "batch_size": 8, "hidden": 8, "depth": 1, "latent_dim": 2}
    jobs = [comparison.make_job("grid", "vanilla", k, s, run_dir=tmp_path, profile="smoke") for k in range(3)]
    assert len({j["config"] for j in jobs}) == 1
    table = comparison.ResultsTable(tmp_path)
    table.put(_row("grid", "vanilla", 1, modes=3) | {"config": jobs[0]["config"]})
    assert [j["seed"] for j in comparison.pending(jobs)] == [0, 2]
    other = comparison.make_job("grid", "vanilla", 1, {**s, "steps": 4}, run_dir=tmp_path, profile="smoke")
    assert comparison.pending([other]) == [other]            # new settings: a new row
    (tmp_path / "rows" / f"{table.stem('grid', 'vanilla', 1, jobs[0]['config'])}.json").write_text("{trunc")
    assert [j["seed"] for j in comparison.pending(jobs)] == [0, 1, 2]   # a damaged row is rerun
    with pytest.raises(ValueError, match="vanilla"):
        comparison.make_job("grid", "dcgan", 0, s, run_dir=tmp_path, profile="smoke")


def test_a_changed_recipe_gets_a_new_key(tmp_path, monkeypatch) -> None:
    # Cached rows are keyed by the recipe's networks and settings, not only by the chapter's
    # settings: results of an older recipe must never be reused for the current one.
    s = {"steps": 3, "batch_size": 8, "width": 4, "n_eval": 10}
    key = lambda: comparison.make_job("mnist", "dcgan", 0, s, run_dir=tmp_path, profile="smoke")["config"]  # noqa: E731
    before = key()
    assert key() == before                                   # deterministic
    original = recipes.RECIPES["dcgan"]
    monkeypatch.setitem(recipes.RECIPES, "dcgan", lambda **kw: dataclasses.replace(original(**kw), reuse_fake=False))
    assert key() != before                                   # another setting
    monkeypatch.setitem(recipes.RECIPES, "dcgan", lambda **kw: original(**{**kw, "width": 2 * kw["width"]}))
    assert key() != before                                   # other networks, same chapter settings
    state = torch.random.get_rng_state()
    key()
    assert torch.equal(torch.random.get_rng_state(), state)  # building the setup leaves the caller's RNG alone


def test_run_jobs_trains_only_new_seeds(tmp_path) -> None:
    s = {"steps": 3, "batch_size": 16, "hidden": 8, "depth": 1, "latent_dim": 2, "n_eval": 50}
    jobs = [comparison.make_job("ring", "pacgan2", k, s, run_dir=tmp_path, profile="smoke") for k in range(2)]
    rows, trained = comparison.run_jobs(jobs[:1], progress=False, slots=["cpu"])
    assert trained == 1 and rows[0]["steps"] == 3 and rows[0]["n_modes"] == 8
    assert comparison.ResultsTable(tmp_path).artifact_path("ring", "pacgan2", 0, jobs[0]["config"]).exists()
    rows2, trained = comparison.run_jobs(jobs, progress=False, slots=["cpu"])
    assert trained == 1 and rows2[0] == rows[0] and rows2[1]["seed"] == 1


def test_mean_sem() -> None:
    assert comparison.mean_sem([1.0, 3.0]) == (2.0, pytest.approx(1.0))
    m, e = comparison.mean_sem([5.0])
    assert m == 5.0 and math.isnan(e)
    assert comparison.pm(2.0, 0.5) == "2.00 ± 0.50" and comparison.pm(2.0, float("nan")) == "2.00"
    assert comparison.mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
