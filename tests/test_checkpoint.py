"""Checkpoints: data never code, refused clearly when they do not match, nothing modified first."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from gan_utils import checkpoint as ck

FIX = "pass another checkpoint_path, or resume=False"


def _net(width: int = 4, depth: int = 1) -> nn.Module:
    layers: list[nn.Module] = [nn.Linear(3, width), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(width, 1))


def _opt(module: nn.Module, name: str = "adam", lr: float = 1e-3) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999))
    if name == "rmsprop":
        return torch.optim.RMSprop(module.parameters(), lr=lr)
    return torch.optim.SGD(module.parameters(), lr=lr)


def _trained(width: int = 4, depth: int = 1, opt: str = "adam", seed: int = 0, **kw):
    """A module and an optimiser with state (one step), as a training run leaves them."""
    torch.manual_seed(seed)
    m = _net(width, depth)
    o = _opt(m, opt, **kw)
    m(torch.randn(5, 3)).pow(2).sum().backward()
    o.step()
    return m, o


def _config(m: nn.Module, o: torch.optim.Optimizer, loss: str = "non_saturating") -> dict:
    return {"loss": loss, "n_critic": 1, "batch_size": 32, "data": "8gaussians",
            "modules": {"generator": ck.module_signature(m)}, "opt_g": ck.optimizer_signature(o)}


def _save(path: Path, m: nn.Module, o: torch.optim.Optimizer, **cfg_kw) -> dict:
    cfg = _config(m, o, **cfg_kw)
    ck.save_atomic(ck.pack_checkpoint(cfg, {"generator": m}, {"opt_g": o}, step=3,
                                      rng=torch.get_rng_state()), path)
    return cfg


def _snapshot(m: nn.Module, o: torch.optim.Optimizer) -> tuple[list, str]:
    return [p.detach().clone() for p in m.state_dict().values()], repr(o.state_dict())


def _refused(path: Path, m: nn.Module, o: torch.optim.Optimizer, cfg: dict | None = None, **kw) -> str:
    """Load must raise one CheckpointError naming the file and the fix, and change nothing."""
    before = _snapshot(m, o)
    with pytest.raises(ck.CheckpointError) as err:
        ck.load_checkpoint(path, expected_config=cfg if cfg is not None else _config(m, o),
                           modules={"generator": m}, optimizers={"opt_g": o}, **kw)
    after = _snapshot(m, o)
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0])) and before[1] == after[1]
    msg = str(err.value)
    assert str(path) in msg and FIX in msg
    return msg


def test_round_trip_loads_and_applies(tmp_path: Path) -> None:
    m, o = _trained()
    cfg = _save(tmp_path / "run.pt", m, o)
    m2, o2 = _trained(seed=1)
    state = ck.load_checkpoint(tmp_path / "run.pt", expected_config=cfg, modules={"generator": m2},
                               optimizers={"opt_g": o2}, required={"step": int, "rng": torch.Tensor})
    assert state["step"] == 3
    ck.apply_checkpoint(state, {"generator": m2}, {"opt_g": o2})
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
    assert repr(o.state_dict()) == repr(o2.state_dict())


def test_other_width_is_refused_with_the_shapes(tmp_path: Path) -> None:
    m, o = _trained(width=4)
    _save(tmp_path / "run.pt", m, o)
    m5, o5 = _trained(width=5)
    msg = _refused(tmp_path / "run.pt", m5, o5)
    assert "another configuration" in msg and "[4, 3] in the checkpoint vs [5, 3] requested" in msg
    # even with a config that hides the change, the module check itself catches it
    msg = _refused(tmp_path / "run.pt", m5, o5, cfg=_config(m, o))
    assert "generator.0.weight: shape [4, 3] in the checkpoint vs [5, 3] requested" in msg


def test_other_architecture_is_refused(tmp_path: Path) -> None:
    m, o = _trained(depth=1)
    _save(tmp_path / "run.pt", m, o)
    deep, o_deep = _trained(depth=2)
    msg = _refused(tmp_path / "run.pt", deep, o_deep, cfg=_config(m, o))
    assert "missing from the checkpoint" in msg and "generator.4.weight" in msg


def test_other_activation_is_refused_by_the_config(tmp_path: Path) -> None:
    m, o = _trained()
    _save(tmp_path / "run.pt", m, o)
    leaky, o_leaky = _trained()
    leaky[1] = nn.LeakyReLU(0.2)  # same tensors, another function
    msg = _refused(tmp_path / "run.pt", leaky, o_leaky)
    assert "'ReLU()' in the checkpoint vs 'LeakyReLU(negative_slope=0.2)' requested" in msg


@pytest.mark.parametrize("saved,wanted,expect", [
    ("adam", "rmsprop", "Adam' in the checkpoint vs 'RMSprop' requested"),
    ("rmsprop", "adam", "RMSprop' in the checkpoint vs 'Adam' requested"),
    ("adam", "sgd", "Adam' in the checkpoint vs 'SGD' requested"),
])
def test_other_optimizer_is_refused(tmp_path: Path, saved: str, wanted: str, expect: str) -> None:
    m, o = _trained(opt=saved)
    _save(tmp_path / "run.pt", m, o)
    m2, o2 = _trained(opt=wanted)
    assert expect in _refused(tmp_path / "run.pt", m2, o2)
    # the optimiser check alone (config made to agree) names the class too
    msg = _refused(tmp_path / "run.pt", m2, o2, cfg=_config(m, o))
    assert "opt_g:" in msg and "in the checkpoint vs" in msg


def test_optimizer_state_keys_checked_without_the_class(tmp_path: Path) -> None:
    """An Adam state under an RMSprop label (a hand-edited file) fails before the first step."""
    m, o = _trained(opt="adam")
    cfg = _config(m, o)
    state = ck.pack_checkpoint(cfg, {"generator": m}, {"opt_g": o})
    state["optimizers"]["opt_g"]["class"] = "RMSprop"
    state["optimizers"]["opt_g"]["state"]["param_groups"][0] = _opt(_net(), "rmsprop").state_dict()["param_groups"][0]
    ck.save_atomic(state, tmp_path / "run.pt")
    m2, o2 = _trained(opt="rmsprop")
    msg = _refused(tmp_path / "run.pt", m2, o2, cfg=cfg)
    assert "'exp_avg'" in msg and "'square_avg'" in msg


def test_other_learning_rate_is_refused(tmp_path: Path) -> None:
    m, o = _trained(lr=1e-3)
    _save(tmp_path / "run.pt", m, o)
    m2, o2 = _trained(lr=2e-4)
    msg = _refused(tmp_path / "run.pt", m2, o2)
    assert "opt_g.param_groups[0].lr: 0.001 in the checkpoint vs 0.0002 requested" in msg


def test_config_differences_are_all_listed(tmp_path: Path) -> None:
    m, o = _trained()
    _save(tmp_path / "run.pt", m, o)
    cfg = _config(m, o, loss="wasserstein")
    cfg.update(n_critic=5, clip_value=0.01)
    msg = _refused(tmp_path / "run.pt", m, o, cfg=cfg)
    assert "loss: 'non_saturating' in the checkpoint vs 'wasserstein' requested" in msg
    assert "n_critic: 1 in the checkpoint vs 5 requested" in msg
    assert "clip_value: not recorded in the checkpoint, 0.01 requested" in msg


@pytest.mark.parametrize("content,expect", [
    (b"", "the file is empty"),
    (os.urandom(4096), "damaged or not a checkpoint"),
    (b"step=3\n", "damaged or not a checkpoint"),
])
def test_damaged_files_are_refused(tmp_path: Path, content: bytes, expect: str) -> None:
    (tmp_path / "run.pt").write_bytes(content)
    m, o = _trained()
    assert expect in _refused(tmp_path / "run.pt", m, o)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path: Path, keep: float) -> None:
    m, o = _trained()
    _save(tmp_path / "full.pt", m, o)
    blob = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "run.pt").write_bytes(blob[:int(len(blob) * keep)])
    assert "damaged or not a checkpoint" in _refused(tmp_path / "run.pt", m, o)


def test_a_folder_in_its_place_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run.pt").mkdir()
    m, o = _trained()
    assert "it is a folder" in _refused(tmp_path / "run.pt", m, o)
    with pytest.raises(ck.CheckpointError, match="is a folder, not a file"):
        ck.check_checkpoint_path(tmp_path / "run.pt")


def test_unwritable_checkpoint_paths_are_refused_up_front(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ck.CheckpointError, match="afile is a file, not a folder"):
        ck.check_checkpoint_path(tmp_path / "afile" / "sub" / "run.pt")
    assert ck.check_checkpoint_path(tmp_path / "new" / "run.pt") == tmp_path / "new" / "run.pt"
    assert not (tmp_path / "new").exists()  # checking creates nothing


class _Evil:
    """Unpickling this runs ``touch MARKER`` -- if the loader lets it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


@pytest.mark.parametrize("writer,expect", [
    ("torch", "needs code to load"),
    ("pickle-2", "needs code to load"),                # torch's legacy (non-zip) format
    ("pickle-4", "damaged or not a checkpoint"),       # opcodes the safe loader does not read
])
def test_a_pickle_that_runs_code_is_refused_and_not_run(tmp_path: Path, writer: str, expect: str) -> None:
    marker = tmp_path / "pwned"
    payload = {"format": ck.FORMAT, "config": {}, "models": {}, "optimizers": {}, "x": _Evil(marker)}
    if writer == "torch":
        torch.save(payload, tmp_path / "run.pt")
    else:
        (tmp_path / "run.pt").write_bytes(pickle.dumps(payload, protocol=int(writer[-1])))
    m, o = _trained()
    msg = _refused(tmp_path / "run.pt", m, o)
    assert expect in msg and (expect != "needs code to load" or "nothing in it ran" in msg)
    assert not marker.exists()


def test_a_checkpoint_without_configuration_is_refused(tmp_path: Path) -> None:
    """What train.py wrote before checkpoints recorded their configuration."""
    m, o = _trained()
    torch.save({"models": {"generator": m.state_dict()}, "opt_g": o.state_dict(), "step": 3},
               tmp_path / "run.pt")
    assert "records no training configuration" in _refused(tmp_path / "run.pt", m, o)
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    assert "holds a Tensor" in _refused(tmp_path / "tensor.pt", m, o)


def test_non_finite_weights_and_missing_entries_are_refused(tmp_path: Path) -> None:
    m, o = _trained()
    cfg = _config(m, o)
    state = ck.pack_checkpoint(cfg, {"generator": m}, {"opt_g": o}, step=3)
    state["models"]["generator"]["state"] = {k: v.clone() for k, v in state["models"]["generator"]["state"].items()}
    state["models"]["generator"]["state"]["0.bias"][0] = float("nan")
    ck.save_atomic(state, tmp_path / "nan.pt")
    assert "generator.0.bias: holds NaN or infinite values" in _refused(tmp_path / "nan.pt", m, o)
    _save(tmp_path / "run.pt", m, o)
    msg = _refused(tmp_path / "run.pt", m, o, required={"step": int, "history": torch.Tensor})
    assert "history: missing" in msg


def test_module_names_must_match(tmp_path: Path) -> None:
    m, o = _trained()
    cfg = _config(m, o)
    ck.save_atomic(ck.pack_checkpoint(cfg, {"generator": m, "encoder": _net()}, {"opt_g": o}), tmp_path / "run.pt")
    assert "['encoder', 'generator'], this run has ['generator']" in _refused(tmp_path / "run.pt", m, o, cfg=cfg)


def test_pack_refuses_what_safe_loading_would_reject() -> None:
    import numpy as np

    m, o = _trained()
    with pytest.raises(TypeError, match=r"checkpoint.history is a numpy.ndarray"):
        ck.pack_checkpoint(_config(m, o), {"generator": m}, {"opt_g": o}, history=np.zeros(3))
    with pytest.raises(TypeError, match=r"checkpoint.config.path is a pathlib"):
        ck.pack_checkpoint({"path": Path("x")}, {"generator": m}, {"opt_g": o})


def test_save_atomic_leaves_only_the_checkpoint(tmp_path: Path) -> None:
    ck.save_atomic({"step": 1}, tmp_path / "run.pt")
    ck.save_atomic({"step": 2}, tmp_path / "run.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    assert torch.load(tmp_path / "run.pt", weights_only=True) == {"step": 2}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has this pid now (until it is reused)


def test_stale_temporaries_are_cleaned_but_a_live_writers_is_kept(tmp_path: Path) -> None:
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"the real checkpoint")
    dead = tmp_path / f".run.pt.tmp-{_dead_pid()}"
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = tmp_path / f".run.pt.tmp-{live_proc.pid}"
        mine = tmp_path / f".run.pt.tmp-{os.getpid()}"
        fresh_dead = tmp_path / f".run.pt.tmp-{_dead_pid()}"
        other = tmp_path / f".other.pt.tmp-{_dead_pid()}"
        old = time.time() - 3600
        for f in (dead, live, mine, other, fresh_dead):
            f.write_bytes(b"half a checkpoint")
        for f in (dead, live, mine, other):
            os.utime(f, (old, old))
        removed = ck.clean_stale_temporaries(ckpt)
        assert removed == [dead]
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {"run.pt", live.name, mine.name, other.name, fresh_dead.name}
        assert ck.clean_stale_temporaries(ckpt, min_age_s=0) == [fresh_dead]
    finally:
        live_proc.kill()
        live_proc.wait()
    assert ck.clean_stale_temporaries(tmp_path / "nowhere" / "run.pt") == []
