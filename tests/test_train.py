"""The training loop: determinism, exact resume, atomic checkpoints, NaN guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from gan_utils import data, losses, models, train


def _setup(seed: int = 0, dropout: float = 0.3, **kw) -> train.GANSetup:
    torch.manual_seed(seed)
    # Dropout in D makes the global RNG matter, which is what resume must restore.
    return train.GANSetup(models.MLPGenerator(8, hidden=(16, 32), out_shape=(2,)),
                          models.MLPDiscriminator(2, hidden=(32, 16), dropout=dropout), 8, **kw)


def _data() -> data.ToyBatches:
    return data.ToyBatches("8gaussians", batch_size=32, seed=0)


def _params(setup: train.GANSetup) -> list[torch.Tensor]:
    return [p.detach().clone() for m in setup.modules().values() for p in m.parameters()]


def _run(steps: int, path: Path | None = None, seed: int = 0, **kw) -> tuple[train.GANSetup, train.TrainResult]:
    setup = _setup(seed, **kw)
    cfg = train.TrainConfig(steps=steps, seed=seed, checkpoint_path=path, progress=False, log_every=5)
    return setup, train.train(setup, _data(), cfg)


def test_history_and_snapshots() -> None:
    setup, result = _run(20)
    assert result.steps_done == 20 and result.stopped == "completed"
    assert set(result.history) == set(train.HISTORY_COLUMNS)
    assert all(len(v) == 20 for v in result.history.values())
    assert 0 < result.history["d_real"].min() and result.history["d_real"].max() < 1
    assert result.snapshots[0][0] == 0 and result.snapshots[-1][0] == 20
    assert result.snapshots[-1][1].shape == (64, 2)


def test_same_seed_same_result() -> None:
    a, _ = _run(15)
    b, _ = _run(15)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))
    c, _ = _run(15, seed=1)
    assert not all(torch.equal(x, y) for x, y in zip(_params(a), _params(c)))


def test_resume_is_exact(tmp_path: Path) -> None:
    """2N steps in one go == N steps, a fresh process-like restart from the checkpoint, N more."""
    straight, full = _run(24)
    ckpt = tmp_path / "run.pt"
    _run(12, ckpt)
    resumed_setup = _setup(seed=123)  # different init: everything must come from the checkpoint
    torch.manual_seed(999)            # and the global RNG too
    cfg = train.TrainConfig(steps=24, seed=0, checkpoint_path=ckpt, progress=False, log_every=5)
    resumed = train.train(resumed_setup, _data(), cfg)
    for x, y in zip(_params(straight), _params(resumed_setup)):
        assert torch.equal(x, y)
    for col in train.HISTORY_COLUMNS:
        assert (full.history[col] == resumed.history[col]).all()
    assert resumed.critic_steps == full.critic_steps == 24


def test_crash_while_writing_keeps_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    ckpt = tmp_path / "run.pt"
    train.save_atomic({"step": 1}, ckpt)
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")  # partial write, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        train.save_atomic({"step": 2}, ckpt)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(ckpt)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temp file left behind


class _Exploding(nn.Module):
    """A discriminator whose output turns to NaN after a few calls."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.calls, self.after = 0, after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.lin(x).squeeze(1)
        return out * float("nan") if self.calls > self.after else out


def test_nan_guard_names_step_and_loss(tmp_path: Path) -> None:
    setup = train.GANSetup(models.MLPGenerator(8, hidden=(16,), out_shape=(2,)), _Exploding(after=21), 8)
    cfg = train.TrainConfig(steps=50, progress=False, log_every=4, checkpoint_path=tmp_path / "c.pt",
                            checkpoint_every=4)
    with pytest.raises(train.NonFiniteLossError, match=r"loss_d became nan at generator step 7"):
        train.train(setup, _data(), cfg)
    # the last checkpoint written is from before the NaNs
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["step"] == 4 and torch.isfinite(state["history"]).all()


def test_time_budget_stops_cleanly() -> None:
    setup = _setup()
    cfg = train.TrainConfig(steps=10_000, progress=False, time_budget_s=0.3)
    result = train.train(setup, _data(), cfg)
    assert 0 < result.steps_done < 10_000 and "time budget" in result.stopped
    assert len(result.history["loss_d"]) == result.steps_done


def test_generator_step_leaves_discriminator_untouched() -> None:
    """The G step must not move D, and D must be trainable again afterwards."""
    setup = _setup()
    train.train(setup, _data(), train.TrainConfig(steps=3, progress=False))
    assert all(p.requires_grad for p in setup.discriminator.parameters())


def test_resume_refuses_a_checkpoint_beyond_the_requested_steps(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    _run(10, ckpt)
    with pytest.raises(ValueError, match="beyond steps=5"):
        _run(5, ckpt)


@pytest.mark.parametrize("gp", [False, True])
def test_compiled_forwards_train_like_eager(tmp_path: Path, gp: bool) -> None:
    """``compile=True`` changes how the forwards run, not what is learnt or what is saved.

    (The gradient penalty's double backward runs through the plain critic.)
    """
    def run(compile: bool) -> tuple[train.GANSetup, dict]:
        # No dropout: compiled graphs draw their random numbers differently from eager mode.
        setup = _setup(dropout=0.0, loss="wasserstein" if gp else "non_saturating",
                       penalty=losses.WGANGP(10.0) if gp else None)
        path = tmp_path / f"compile-{compile}.pt"
        cfg = train.TrainConfig(steps=4, progress=False, compile=compile, compile_backend="aot_eager",
                                checkpoint_path=path)
        train.train(setup, _data(), cfg)
        return setup, torch.load(path, weights_only=True)

    from torch._dynamo.utils import counters

    eager, eager_ckpt = run(False)
    torch._dynamo.reset()
    counters.clear()
    compiled, compiled_ckpt = run(True)
    assert counters["stats"]["unique_graphs"] >= 2  # G and D really went through the compiler
    for x, y in zip(_params(eager), _params(compiled)):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)
    for name in ("generator", "discriminator"):
        assert compiled_ckpt["models"][name]["state"].keys() == eager_ckpt["models"][name]["state"].keys()
        assert compiled_ckpt["models"][name]["class"] == eager_ckpt["models"][name]["class"]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"))])
@pytest.mark.parametrize("recipe", ["dcgan", "wgan_gp"])
def test_bf16_autocast_matches_float32_within_bf16_precision(recipe: str, device: str) -> None:
    """``amp=True``: the losses and both players' gradients of one step agree with float32.

    Stated tolerance: bf16 keeps 8 significant bits (relative rounding 2**-8 = 0.4% per
    operation), and G's first layer sits about seven bf16 matrix products away from the
    loss, so each gradient tensor may be off by 20% of its norm (cosine >= 0.98; measured
    on these recipes on the CPU: at most 15%), all gradients together by 10% (measured: 7% and 3%),
    the losses by 2%. A sign error, a missing scale or a gradient that autocast dropped
    is off by 100% or more. The gradients must also *differ* from float32's, or autocast
    did not run at all. Plain SGD makes each parameter's change lr times its gradient.
    """
    from gan_utils import recipes

    def step(amp: bool) -> tuple[list[torch.Tensor], dict]:
        torch.manual_seed(0)
        setup = recipes.RECIPES[recipe]()
        setup.opt_g = setup.opt_d = train.OptimizerSpec("sgd", 1e-2)
        setup.schedule = train.CriticSchedule(1)
        before = _params(setup)
        images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
        result = train.train(setup, data.DeviceBatches(images, batch_size=16, device=device),
                             train.TrainConfig(steps=1, amp=amp, device=device, progress=False, n_fixed=2))
        return [b - a.cpu() for a, b in zip(_params(setup), before)], result.history

    g32, h32 = step(False)
    g16, h16 = step(True)
    assert any(not torch.equal(a, b) for a, b in zip(g16, g32))
    norm = torch.linalg.vector_norm
    for a, b in zip(g16, g32):
        assert norm(a - b) <= 0.2 * norm(b) + 1e-9
    all16, all32 = torch.cat([a.flatten() for a in g16]), torch.cat([b.flatten() for b in g32])
    assert norm(all16 - all32) <= 0.1 * norm(all32)
    for column in ("loss_d", "loss_g", "penalty"):
        assert abs(h16[column][0] - h32[column][0]) <= 0.02 * abs(h32[column][0]) + 1e-3, column


def test_unknown_compile_backend_names_the_choices() -> None:
    with pytest.raises(ValueError, match="compile_backend.*inductor"):
        train.TrainConfig(steps=1, compile=True, compile_backend="warp-drive").validate()


def _grads(modules) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for m in modules for p in m.parameters()]


@pytest.mark.parametrize("bigan", [False, True])
def test_reusing_the_fake_batch_gives_the_two_pass_gradients(bigan: bool) -> None:
    """One training step with reuse_fake=True == a straightforward two-pass step on the same z.

    Two-pass: the D step computes G(z) without a graph; the G step computes G(z) again
    (same z) through the *updated* D. With reuse, the loop computes G(z) once. Both steps'
    gradients must agree; a reuse that forgot to detach the fakes in the D step, or that
    scored them with the old D, would fail.
    """
    from gan_utils import views

    def build(reuse: bool) -> train.GANSetup:
        torch.manual_seed(0)
        G = models.MLPGenerator(4, hidden=(16,), out_shape=(2,))
        D = (models.JointDiscriminator(4, hidden=(16,), in_features=2, dropout=0.0) if bigan
             else models.MLPDiscriminator(2, hidden=(16,), dropout=0.0))
        view = views.JointView(models.BiGANEncoder(4, hidden=(8,), in_features=2)) if bigan else views.PlainView()
        return train.GANSetup(G, D, 4, loss="bigan" if bigan else "non_saturating", view=view, reuse_fake=reuse,
                              opt_g=train.OptimizerSpec("sgd", 0.1), opt_d=train.OptimizerSpec("sgd", 0.1))

    reused = build(True)
    train.train(reused, _data(), train.TrainConfig(steps=1, progress=False))

    ref = build(False)
    objective = losses.get_objective(ref.loss)
    x = _data().batch(0)[0]
    z = train.sample_noise("normal", len(x), 4, torch.device("cpu"), torch.Generator().manual_seed(0))
    opt_d = torch.optim.SGD(ref.discriminator.parameters(), lr=0.1)
    g_params = [p for m in ref.g_modules().values() for p in m.parameters()]
    opt_g = torch.optim.SGD(g_params, lr=0.1)
    with torch.no_grad():
        real_in, fake_in = ref.view.real(x), ref.view.fake(ref.generator(z), z)
    loss_d = objective.d_loss(ref.discriminator(*real_in), ref.discriminator(*fake_in))
    loss_d.backward()
    opt_d.step()
    d_grads = _grads([ref.discriminator])
    fake_in, real_in = ref.view.fake(ref.generator(z), z), ref.view.real(x)
    s_fake = ref.discriminator(*fake_in)
    s_real = ref.discriminator(*real_in) if objective.g_uses_real else None
    opt_g.zero_grad()
    objective.g_loss(s_real, s_fake).backward()
    opt_g.step()

    for a, b in zip(_grads([reused.discriminator]), d_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(_grads(reused.g_modules().values()), _grads(ref.g_modules().values())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(_params(reused), _params(ref)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- resuming the wrong thing (issue 14)

def _snapshot_state(setup: train.GANSetup) -> list[torch.Tensor]:
    return [t.detach().clone() for m in setup.modules().values() for t in m.state_dict().values()]


def _unchanged(before: list[torch.Tensor], setup: train.GANSetup) -> bool:
    return all(torch.equal(a, b) for a, b in zip(before, _snapshot_state(setup)))


@pytest.mark.parametrize("change, expected", [
    (dict(loss="wasserstein"), r"loss: 'non_saturating' in the checkpoint vs 'wasserstein'"),
    (dict(schedule=train.CriticSchedule(5)), r"schedule\.n_critic: 1 in the checkpoint vs 5"),
    (dict(clip_value=0.01), r"clip_value: None in the checkpoint vs 0\.01"),
    (dict(penalty=losses.WGANGP(10.0)), r"penalty"),
    (dict(noise="uniform"), r"noise: 'normal' in the checkpoint vs 'uniform'"),
    (dict(opt_d=train.OptimizerSpec("rmsprop", 2e-4)), r"opt_d"),
    (dict(opt_g=train.OptimizerSpec("adam", 1e-3)), r"opt_g.*lr"),
], ids=["objective", "critic-steps", "clipping", "penalty", "noise", "optimizer", "learning-rate"])
def test_resuming_with_another_configuration_lists_the_differences(tmp_path: Path, change: dict,
                                                                   expected: str) -> None:
    ckpt = tmp_path / "run.pt"
    _run(4, ckpt)
    setup = _setup(seed=5, **change)
    before = _snapshot_state(setup)
    cfg = train.TrainConfig(steps=8, checkpoint_path=ckpt, progress=False)
    with pytest.raises(ValueError, match=expected) as err:
        train.train(setup, _data(), cfg)
    message = str(err.value)
    assert str(ckpt) in message and "resume=False" in message
    assert _unchanged(before, setup)                         # refused before anything was loaded


def test_resuming_another_architecture_or_batch_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    _run(4, ckpt)
    torch.manual_seed(0)
    wider = train.GANSetup(models.MLPGenerator(8, hidden=(16, 64), out_shape=(2,)),
                           models.MLPDiscriminator(2, hidden=(32, 16)), 8)
    with pytest.raises(ValueError, match=r"modules\.generator.*in the checkpoint vs"):
        train.train(wider, _data(), train.TrainConfig(steps=8, checkpoint_path=ckpt, progress=False))
    with pytest.raises(ValueError, match=r"data\.batch_size: 32 in the checkpoint vs 16"):
        train.train(_setup(), data.ToyBatches("8gaussians", batch_size=16, seed=0),
                    train.TrainConfig(steps=8, checkpoint_path=ckpt, progress=False))
    with pytest.raises(ValueError, match=r"seed: 0 in the checkpoint vs 3"):
        train.train(_setup(), _data(), train.TrainConfig(steps=8, seed=3, checkpoint_path=ckpt, progress=False))


@pytest.mark.parametrize("damage", ["empty", "truncated", "random", "folder", "code"])
def test_damaged_checkpoints_give_one_clear_error(tmp_path: Path, damage: str) -> None:
    ckpt = tmp_path / "run.pt"
    _run(4, ckpt)
    raw = ckpt.read_bytes()
    if damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "truncated":
        ckpt.write_bytes(raw[: len(raw) // 2])
    elif damage == "random":
        ckpt.write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy().tobytes())
    elif damage == "folder":
        ckpt.unlink()
        ckpt.mkdir()
    else:
        import pickle

        class Evil:
            def __reduce__(self):
                return (Path.touch, (tmp_path / "pwned",))
        ckpt.write_bytes(pickle.dumps({"format": 1, "x": Evil()}))
    setup = _setup(seed=5)
    before = _snapshot_state(setup)
    with pytest.raises(ValueError) as err:
        train.train(setup, _data(), train.TrainConfig(steps=8, checkpoint_path=ckpt, progress=False))
    message = str(err.value)
    assert str(ckpt) in message and "Fix:" in message
    assert _unchanged(before, setup)
    assert not (tmp_path / "pwned").exists()                 # the file's code never ran


def test_a_stale_temporary_beside_the_checkpoint_is_cleaned(tmp_path: Path) -> None:
    import os
    import subprocess
    proc = subprocess.Popen(["true"])
    proc.wait()                                               # a pid that is certainly gone
    stale = tmp_path / f".run.pt.tmp-{proc.pid}"
    stale.write_bytes(b"x" * 1000)
    old = stale.stat().st_mtime - 3600
    os.utime(stale, (old, old))
    live = tmp_path / f".run.pt.tmp-{os.getppid()}"          # a live process's file is kept
    live.write_bytes(b"x")
    os.utime(live, (old, old))
    _run(2, tmp_path / "run.pt")
    assert not stale.exists() and live.exists()


@pytest.mark.parametrize("field, value, expected", [
    ("steps", 2.5, "steps must be an integer"),
    ("seed", 2.5, "seed must be an integer"),
    ("seed", -1, "seed"),
    ("seed", 2**64, "seed"),
    ("log_every", True, "log_every must be an integer"),
])
def test_train_config_refuses_non_integers_and_bad_seeds(field: str, value, expected: str) -> None:
    kw = {"steps": 10, field: value}
    with pytest.raises(ValueError, match=expected):
        train.TrainConfig(**kw).validate()


# ------------------------------------------------------------------ learning-rate decay

def test_linear_decay_holds_then_falls_to_zero() -> None:
    spec = train.OptimizerSpec("sgd", 1.0, decay_from=0.5)
    assert [spec.lr_at(t, 10) for t in range(10)] == pytest.approx([1, 1, 1, 1, 1, 1.0, 0.8, 0.6, 0.4, 0.2])
    assert spec.lr_at(10, 10) == 0.0                       # after the last step
    assert [train.OptimizerSpec("sgd", 1.0, decay_from=0.0).lr_at(t, 4) for t in range(4)] == [1, 0.75, 0.5, 0.25]
    assert train.OptimizerSpec("sgd", 0.3).lr_at(9, 10) == 0.3   # None: constant


def _sgd(decay_from: float | None) -> dict:
    return {"opt_g": train.OptimizerSpec("sgd", 0.05, decay_from=decay_from),
            "opt_d": train.OptimizerSpec("sgd", 0.05, decay_from=decay_from)}


def test_the_loop_trains_with_the_decayed_rate() -> None:
    """Plain SGD, same seed: step 1 of a 2-step run decaying from 0 uses half the rate. D's
    update at step 1 starts from the same state with the same batch in both runs, so it moves
    every weight of D exactly half as far; G's update then sees a different D."""
    def d_params(setup: train.GANSetup) -> list[torch.Tensor]:
        return [p.detach().clone() for p in setup.discriminator.parameters()]

    w1 = d_params(_run(1, **_sgd(None))[0])            # after step 0 (rate 0.05 in all three runs)
    const_setup, decayed_setup = _run(2, **_sgd(None))[0], _run(2, **_sgd(0.0))[0]   # step 1: 0.05 vs 0.025
    const, decayed = d_params(const_setup), d_params(decayed_setup)
    assert all(torch.allclose(d - w, 0.5 * (c - w), atol=1e-7) for w, c, d in zip(w1, const, decayed))
    assert max(float((c - w).abs().max()) for w, c in zip(w1, const)) > 1e-4     # step 1 did move D
    assert not all(torch.equal(a, b) for a, b in zip(const_setup.generator.parameters(),
                                                     decayed_setup.generator.parameters()))


class _Stop(Exception):
    pass


def test_resume_with_a_decaying_rate_is_exact(tmp_path: Path) -> None:
    """Interrupted after the checkpoint at step 6 of 12, resumed: the same weights as 12 straight."""
    straight = _params(_run(12, **_sgd(0.25))[0])
    ckpt = tmp_path / "run.pt"

    def stop(step: int, _images: torch.Tensor) -> None:
        if step == 7:
            raise _Stop

    cfg = train.TrainConfig(steps=12, seed=0, checkpoint_path=ckpt, checkpoint_every=6, snapshot_every=1,
                            progress=False, log_every=5)
    with pytest.raises(_Stop):
        train.train(_setup(**_sgd(0.25)), _data(), cfg, on_snapshot=stop)
    resumed = _setup(seed=123, **_sgd(0.25))
    train.train(resumed, _data(), cfg)
    assert all(torch.equal(a, b) for a, b in zip(straight, _params(resumed)))


def test_a_bad_decay_fraction_is_refused_before_anything_changes() -> None:
    setup = _setup(**_sgd(1.0))
    before = _params(setup)
    with pytest.raises(ValueError, match=r"decay_from must be None .* fraction in \[0, 1\), got 1\.0"):
        train.train(setup, _data(), train.TrainConfig(steps=2, progress=False))
    assert all(torch.equal(a, b) for a, b in zip(before, _params(setup)))


def test_setups_without_decay_keep_their_signature() -> None:
    """The field added for decay is left out while unused, so cached results stay valid."""
    plain = train.setup_signature(_setup(**_sgd(None)))
    assert "decay_from" not in plain["opt_g"] and "decay_from" not in plain["opt_d"]
    decayed = train.setup_signature(_setup(**_sgd(0.5)))
    assert decayed["opt_g"]["decay_from"] == 0.5 and decayed != plain
