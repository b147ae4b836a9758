"""The one training loop every GAN in the book uses.

What differs between a vanilla GAN, DCGAN, WGAN, WGAN-GP and BiGAN is *data*
held by :class:`GANSetup` -- the networks, the objective's name, critic steps
per generator step, weight clipping, the gradient-penalty weight, an optional
encoder, the optimisers and the noise distribution. :func:`train` reads it and
runs Algorithm 1 of Goodfellow et al. (2014) in its general form::

    for every generator step:
        repeat n_critic times:           # critic / discriminator
            x ~ data (a fresh batch each time), z ~ p(z)
            loss_D = d_loss(D(real pair), D(fake pair, detached)) [+ penalty]
            step D; [clip D's weights to [-c, c]]
        z ~ p(z)                         # generator (and encoder)
        loss_G = g_loss(D(real pair)*, D(fake pair)); step G [and E]
        (* BiGAN only: the encoder acts on real data, so its pair enters too)

Per step it records losses and mean scores on the device (no host sync), checks
them for NaN/inf every ``log_every`` steps, keeps generator snapshots on fixed
noise, writes atomic checkpoints and resumes from them exactly.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from .config import check_choice, check_positive
from .losses import get_objective, gradient_penalty

with warnings.catch_warnings():
    # tqdm.auto warns when ipywidgets is missing (e.g. under papermill); a text bar is fine then.
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop", "sgd")
NOISE: tuple[str, ...] = ("normal", "uniform")
HISTORY_COLUMNS: tuple[str, ...] = ("loss_d", "loss_g", "d_real", "d_fake", "penalty")


class Batches(Protocol):
    """Anything with ``batch(k) -> (x, ...)`` that is a pure function of ``k``."""

    batch_size: int

    def batch(self, k: int) -> tuple[torch.Tensor, ...]: ...


class NonFiniteLossError(FloatingPointError):
    """Training produced NaN or inf; the message names the step and the quantity."""


@dataclass
class OptimizerSpec:
    """Which optimiser and its settings, e.g. ``OptimizerSpec("adam", 2e-4, (0.5, 0.999))``."""

    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)

    def build(self, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_positive("lr", self.lr)
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas)
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr)


@dataclass
class GANSetup:
    """Everything that makes one GAN different from another."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    loss: str = "non_saturating"            # a key of gan_utils.losses.OBJECTIVES
    n_critic: int = 1                       # critic steps per generator step
    clip_value: float | None = None         # WGAN: clamp critic weights to [-c, c]
    gp_weight: float = 0.0                  # WGAN-GP: lambda of the gradient penalty
    encoder: nn.Module | None = None        # BiGAN: D sees (x, E(x)) and (G(z), z)
    noise: str = "normal"                   # p(z): N(0, I) or U(-1, 1)
    opt_g: OptimizerSpec = field(default_factory=OptimizerSpec)
    opt_d: OptimizerSpec = field(default_factory=OptimizerSpec)
    critic_warmup: tuple[int, int] | None = None  # WGAN code: (first k G steps, critic steps then)

    def validate(self) -> None:
        get_objective(self.loss)
        check_choice("noise", self.noise, NOISE)
        check_positive("latent_dim", self.latent_dim)
        check_positive("n_critic", self.n_critic)
        check_positive("gp_weight", self.gp_weight, allow_zero=True)
        if self.clip_value is not None:
            check_positive("clip_value", self.clip_value)
        if self.gp_weight > 0 and self.encoder is not None:
            raise ValueError("a gradient penalty on BiGAN's joint discriminator is not supported")
        if self.critic_warmup is not None:
            check_positive("critic_warmup steps", self.critic_warmup[0])
            check_positive("critic_warmup critic steps", self.critic_warmup[1])

    def critic_steps(self, g_step: int) -> int:
        """Critic steps before generator step ``g_step`` (more during the warm-up)."""
        if self.critic_warmup is not None and g_step < self.critic_warmup[0]:
            return self.critic_warmup[1]
        return self.n_critic

    def modules(self) -> dict[str, nn.Module]:
        mods = {"generator": self.generator, "discriminator": self.discriminator}
        if self.encoder is not None:
            mods["encoder"] = self.encoder
        return mods


def compile_backends() -> tuple[str, ...]:
    """Every backend ``torch.compile`` accepts here, debugging ones (``aot_eager``) included."""
    import torch._dynamo  # imported on demand: loading the compiler stack costs about a second

    return tuple(torch._dynamo.list_backends(exclude_tags=()))


@dataclass
class TrainConfig:
    """How long and how observably to train."""

    steps: int                                  # generator steps
    seed: int = 0
    device: str | torch.device = "cpu"
    log_every: int = 50                         # progress bar + NaN check period
    snapshot_every: int | None = None           # fixed-noise samples (None: 8 over the run)
    n_fixed: int = 64                           # fixed noise vectors for snapshots
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_every: int | None = None         # None: only at the end
    resume: bool = True                         # continue from checkpoint_path if it exists
    time_budget_s: float | None = None          # stop (cleanly) after this much wall time
    amp: bool = False                           # bf16 autocast on CUDA
    compile: bool = False                       # torch.compile the forward passes of G, D (and E)
    compile_backend: str = "inductor"           # any torch.compile backend, e.g. "aot_eager"
    progress: bool = True

    def validate(self) -> None:
        for name in ("steps", "log_every", "n_fixed"):
            check_positive(name, getattr(self, name))
        for name in ("snapshot_every", "checkpoint_every", "time_budget_s"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if self.compile:
            check_choice("compile_backend", self.compile_backend, compile_backends())


@dataclass
class TrainResult:
    history: dict[str, np.ndarray]              # one value per generator step, HISTORY_COLUMNS
    snapshots: list[tuple[int, torch.Tensor]]   # (step, G(fixed z) on the CPU)
    steps_done: int
    wall_s: float
    stopped: str                                # "completed" or why it stopped early
    critic_steps: int                           # total critic updates performed

    def summary(self) -> str:
        return (f"{self.steps_done} generator steps, {self.critic_steps} critic steps, "
                f"{self.wall_s:.1f} s ({self.stopped})")


def sample_noise(kind: str, n: int, dim: int, device: torch.device,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw z: ``normal`` N(0, I) or ``uniform`` U(-1, 1) (BiGAN's MNIST setting)."""
    if kind == "normal":
        return torch.randn(n, dim, device=device, generator=generator)
    check_choice("noise", kind, NOISE)
    return torch.rand(n, dim, device=device, generator=generator).mul_(2).sub_(1)


# ---------------------------------------------------------------- checkpoints

def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then ``os.replace``.

    A crash (or a full disk) mid-write leaves the previous checkpoint untouched:
    ``os.replace`` is atomic on POSIX and Windows.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _rng_state(device: torch.device, noise_gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "noise": noise_gen.get_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device, noise_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    noise_gen.set_state(state["noise"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------- the loop

def _check_finite(hist: torch.Tensor, start: int, stop: int) -> None:
    """Raise if any recorded value in steps [start, stop) is NaN/inf (one host sync)."""
    block = hist[start:stop]
    if bool(torch.isfinite(block).all()):
        return
    bad = (~torch.isfinite(block)).nonzero()[0].tolist()
    step, col = start + bad[0], HISTORY_COLUMNS[bad[1]]
    raise NonFiniteLossError(
        f"{col} became {block[bad[0], bad[1]].item()} at generator step {step}; training stopped. "
        f"Try a lower learning rate, check the inputs are finite, or resume from the last checkpoint.")


def _score_summary(scores: torch.Tensor, logits: bool) -> torch.Tensor:
    """Mean probability D(.) for a classifier, mean raw score for a critic."""
    return torch.sigmoid(scores.detach().float()).mean() if logits else scores.detach().float().mean()


def train(setup: GANSetup, data: Batches, cfg: TrainConfig,
          on_snapshot: Callable[[int, torch.Tensor], None] | None = None) -> TrainResult:
    """Train ``setup`` on ``data`` for ``cfg.steps`` generator steps (see the module docstring)."""
    setup.validate()
    cfg.validate()
    device = torch.device(cfg.device)
    objective = get_objective(setup.loss)
    G, D, E = setup.generator.to(device), setup.discriminator.to(device), setup.encoder
    if E is not None:
        E = E.to(device)
    g_params = list(G.parameters()) + (list(E.parameters()) if E is not None else [])
    opt_g, opt_d = setup.opt_g.build(g_params), setup.opt_d.build(list(D.parameters()))
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    fixed_z = sample_noise(setup.noise, cfg.n_fixed, setup.latent_dim, device,
                           torch.Generator(device=device).manual_seed(cfg.seed + 1))
    snapshot_every = cfg.snapshot_every or max(1, cfg.steps // 8)
    hist = torch.zeros(cfg.steps, len(HISTORY_COLUMNS), device=device)
    snapshots: list[tuple[int, torch.Tensor]] = []
    step, data_step, critic_updates, elapsed_before = 0, 0, 0, 0.0

    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    if ckpt is not None and cfg.resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        for name, module in setup.modules().items():
            module.load_state_dict(state["models"][name])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, data_step = state["step"], state["data_step"]
        if step > cfg.steps:
            raise ValueError(f"checkpoint {ckpt} is at generator step {step}, beyond steps={cfg.steps}; "
                             f"ask for at least {step} steps or use another checkpoint_path")
        critic_updates, elapsed_before = state["critic_updates"], state["wall_s"]
        done = min(step, cfg.steps)
        hist[:done] = state["history"][:done].to(device)
        snapshots = [(s, img) for s, img in state["snapshots"] if s <= cfg.steps]
        _set_rng_state(state["rng"], device, noise_gen)

    def checkpoint() -> None:
        if ckpt is None:
            return
        save_atomic({
            "models": {n: m.state_dict() for n, m in setup.modules().items()},
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "step": step, "data_step": data_step, "critic_updates": critic_updates,
            "wall_s": elapsed_before + time.monotonic() - t0,
            "history": hist[:step].cpu(), "snapshots": snapshots,
            "rng": _rng_state(device, noise_gen),
        }, ckpt)

    def snapshot() -> None:
        was_training = G.training
        G.eval()
        with torch.no_grad():
            images = G(fixed_z).float().cpu()
        G.train(was_training)
        snapshots.append((step, images))
        if on_snapshot is not None:
            on_snapshot(step, images)

    # Compiled wrappers share their parameters with the plain modules, which stay the
    # ones that are checkpointed, snapshotted (eval mode) and used by the gradient
    # penalty (its double backward is not supported by compiled graphs).
    def fast(m: nn.Module | None) -> Any:
        return torch.compile(m, backend=cfg.compile_backend) if cfg.compile and m is not None else m

    G_, D_, E_ = fast(G), fast(D), fast(E)
    amp = (torch.autocast(device_type="cuda", dtype=torch.bfloat16)
           if cfg.amp and device.type == "cuda" else contextlib.nullcontext())
    zero = torch.zeros((), device=device)
    t0 = time.monotonic()
    stopped, checked_until = "completed", step
    for m in setup.modules().values():
        m.train()
    if step == 0 and not snapshots:
        snapshot()
    bar = tqdm(total=cfg.steps, initial=step, disable=not cfg.progress, desc="training", unit="step",
               mininterval=2.0)
    try:
        while step < cfg.steps:
            # ---- critic / discriminator
            for _ in range(setup.critic_steps(step)):
                x = data.batch(data_step)[0]
                data_step += 1
                z = sample_noise(setup.noise, x.shape[0], setup.latent_dim, device, noise_gen)
                with amp:
                    with torch.no_grad():
                        fake = G_(z)
                        code = E_(x) if E is not None else None
                    real_pair = (x, code) if E is not None else (x,)
                    fake_pair = (fake, z) if E is not None else (fake,)
                    s_real, s_fake = D_(*real_pair), D_(*fake_pair)
                    loss_d = objective.d_loss(s_real, s_fake)
                penalty = (gradient_penalty(D, x, fake, setup.gp_weight, noise_gen)
                           if setup.gp_weight > 0 else zero)
                opt_d.zero_grad(set_to_none=True)
                (loss_d + penalty).backward()
                opt_d.step()
                critic_updates += 1
                if setup.clip_value is not None:
                    with torch.no_grad():
                        for p in D.parameters():
                            p.clamp_(-setup.clip_value, setup.clip_value)
            # ---- generator (and encoder)
            D.requires_grad_(False)  # no weight gradients for D in the G step
            z = sample_noise(setup.noise, x.shape[0], setup.latent_dim, device, noise_gen)
            with amp:
                s_fake_g = D_(G_(z), z) if E is not None else D_(G_(z))
                s_real_g = D_(x, E_(x)) if E is not None else None
                loss_g = objective.g_loss(s_real_g, s_fake_g)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)

            hist[step] = torch.stack([loss_d.detach().float(), loss_g.detach().float(),
                                      _score_summary(s_real, objective.logits),
                                      _score_summary(s_fake, objective.logits),
                                      penalty.detach().float()])
            step += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                _check_finite(hist, checked_until, step)
                checked_until = step
                bar.set_postfix(loss_d=f"{hist[step - 1, 0].item():.3f}",
                                loss_g=f"{hist[step - 1, 1].item():.3f}")
            if step % snapshot_every == 0 or step == cfg.steps:
                snapshot()
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _check_finite(hist, checked_until, step)
                checked_until = step
                checkpoint()
            if cfg.time_budget_s is not None and time.monotonic() - t0 > cfg.time_budget_s:
                stopped = f"time budget of {cfg.time_budget_s:g} s reached"
                break
    finally:
        bar.close()
        D.requires_grad_(True)
    _check_finite(hist, checked_until, step)
    if not snapshots or snapshots[-1][0] != step:
        snapshot()
    checkpoint()
    history = hist[:step].cpu().numpy()
    return TrainResult({c: history[:, i] for i, c in enumerate(HISTORY_COLUMNS)}, snapshots, step,
                       elapsed_before + time.monotonic() - t0, stopped, critic_updates)
