"""The one training loop every GAN in the book uses.

What differs between a vanilla GAN, DCGAN, WGAN, WGAN-GP, BiGAN, PacGAN, DRAGAN
or an R1-regularised GAN is *data* held by :class:`GANSetup`: the networks, the
objective, what D sees (:mod:`gan_utils.views`), the penalty
(:mod:`gan_utils.losses`), the critic schedule, weight clipping, the noise and
the optimisers. :func:`train` runs Algorithm 1 of Goodfellow et al. (2014) in
its general form and never asks which GAN it trains::

    for every generator step t:
        repeat schedule(t) times:                    # critic / discriminator
            x ~ data (a fresh batch each time), z ~ p(z)
            real, fake = view.real(x), view.fake(G(z), z)     (generator side detached)
            loss_D = d_loss(D(*real), D(*fake)) + penalty(D, real, fake)
            step D; clip D's weights to [-c, c] if c is set
        if not reuse_fake: z ~ p(z) afresh, recompute view.fake(G(z), z)
        loss_G = g_loss(D(*real) if the objective reads it, D(*fake)); step G (and E)

With ``reuse_fake`` the last critic step computes ``G(z)`` once, with its graph:
D trains on it detached and the generator step back-propagates through it, as the
DCGAN reference code and pytorch/examples do. That saves one generator forward
pass per step and is as unbiased an estimate as fresh noise.

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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt_io
from .checkpoint import save_atomic  # noqa: F401  (re-exported: train.save_atomic)
from .config import check_choice, check_int, check_positive, check_seed
from .losses import Objective, Penalty, get_objective
from .distributed import ShardedBatches, World
from .views import PlainView, View

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
    """Which optimiser and its settings, e.g. ``OptimizerSpec("adam", 2e-4, (0.5, 0.999))``.

    ``decay_from``: None keeps the learning rate constant; a fraction f in [0, 1) keeps it for
    the first f of the run's generator steps and then lowers it linearly, reaching 0 after the
    last step (``jeffdonahue/bigan`` decays this way over the second half, f = 0.5). The rate
    is a function of the step alone, so a resumed run follows the same schedule.
    """

    name: str = "adam"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_from: float | None = field(default=None, metadata={"omit_if_default": True})

    def lr_at(self, step: int, steps: int) -> float:
        """The learning rate for generator step ``step`` (0-based) of a run of ``steps``."""
        if self.decay_from is None:
            return self.lr
        start = self.decay_from * steps
        if step < start:
            return self.lr
        return self.lr * (steps - step) / (steps - start)

    def validate(self) -> None:
        check_choice("optimizer", self.name, OPTIMIZERS)
        check_positive("lr", self.lr)
        if self.decay_from is not None and not (isinstance(self.decay_from, (int, float))
                                                and not isinstance(self.decay_from, bool)
                                                and 0 <= self.decay_from < 1):
            raise ValueError(f"decay_from must be None (constant learning rate) or a fraction in [0, 1), "
                             f"got {self.decay_from!r}; e.g. decay_from=0.5 decays over the second half")

    def build(self, params: Sequence[nn.Parameter]) -> torch.optim.Optimizer:
        self.validate()
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, betas=self.betas)
        if self.name == "rmsprop":
            return torch.optim.RMSprop(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr)


@dataclass(frozen=True)
class CriticSchedule:
    """Critic steps before generator step ``t``: ``n_critic``, or ``burst`` during bursts.

    WGAN's official code (Arjovsky et al. 2017, ``main.py``) trains the critic for 100
    iterations at each of the first 25 generator iterations *and* at every 500th one,
    so that the critic is near its optimum whenever its estimate is read:
    ``CriticSchedule(5, burst=100, burst_first=25, burst_every=500)``.
    """

    n_critic: int = 1
    burst: int | None = None          # critic steps during a burst
    burst_first: int = 0              # generator steps 0 .. burst_first-1 are bursts
    burst_every: int | None = None    # and every generator step t with t % burst_every == 0

    def __call__(self, g_step: int) -> int:
        if self.burst is not None and (g_step < self.burst_first or
                                       (self.burst_every is not None and g_step % self.burst_every == 0)):
            return self.burst
        return self.n_critic

    def validate(self) -> None:
        check_int("n_critic", self.n_critic, minimum=1)
        if self.burst is not None:
            check_int("burst", self.burst, minimum=1)
        check_int("burst_first", self.burst_first, minimum=0)
        if self.burst_every is not None:
            check_int("burst_every", self.burst_every, minimum=1)


@dataclass
class GANSetup:
    """Everything that makes one GAN different from another (build them with ``gan_utils.recipes``)."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    loss: str = "non_saturating"            # a key of gan_utils.losses.OBJECTIVES
    view: View = field(default_factory=PlainView)  # what D sees: plain, joint (BiGAN), packed (PacGAN)
    penalty: Penalty | None = None          # e.g. losses.WGANGP(10), losses.DRAGAN(10), losses.R1(10)
    schedule: CriticSchedule = field(default_factory=CriticSchedule)
    clip_value: float | None = None         # WGAN: clamp critic weights to [-c, c] after each step
    noise: str = "normal"                   # p(z): N(0, I) or U(-1, 1)
    opt_g: OptimizerSpec = field(default_factory=OptimizerSpec)
    opt_d: OptimizerSpec = field(default_factory=OptimizerSpec)
    reuse_fake: bool = False                # G step reuses the last critic step's G(z) (one G pass)

    def validate(self) -> None:
        get_objective(self.loss)
        check_choice("noise", self.noise, NOISE)
        check_int("latent_dim", self.latent_dim, minimum=1)
        if not isinstance(self.schedule, CriticSchedule):
            raise ValueError(f"schedule must be a train.CriticSchedule, got {self.schedule!r}; "
                             f"e.g. CriticSchedule(5) for five critic steps per generator step")
        self.schedule.validate()
        if self.clip_value is not None:
            check_positive("clip_value", self.clip_value)
        self.opt_g.validate()
        self.opt_d.validate()
        if self.penalty is not None and not callable(self.penalty):
            raise ValueError(f"penalty must be callable (e.g. gan_utils.losses.WGANGP(10.0)), got {self.penalty!r}")

    @property
    def encoder(self) -> nn.Module | None:
        """BiGAN's encoder (held by its view), else None."""
        return self.view.modules().get("encoder")

    def g_modules(self) -> dict[str, nn.Module]:
        """The networks the generator step trains: G and whatever the view owns (BiGAN's E)."""
        return {"generator": self.generator, **self.view.modules()}

    def modules(self) -> dict[str, nn.Module]:
        return {**self.g_modules(), "discriminator": self.discriminator}


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
    amp: bool = False                           # bf16 autocast of forwards and losses
    compile: bool = False                       # torch.compile the forward passes of G, D (and E)
    compile_backend: str = "inductor"           # any torch.compile backend, e.g. "aot_eager"
    progress: bool = True

    def validate(self) -> None:
        for name in ("steps", "log_every", "n_fixed"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("snapshot_every", "checkpoint_every"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)
        if self.time_budget_s is not None:
            check_positive("time_budget_s", self.time_budget_s)
        check_seed("seed", self.seed)
        if self.checkpoint_path is not None:
            ckpt_io.check_checkpoint_path(self.checkpoint_path)
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
        return (f"{self.steps_done} generator steps, {self.critic_steps} discriminator updates, "
                f"{self.wall_s:.1f} s ({self.stopped})")


def sample_noise(kind: str, n: int, dim: int, device: torch.device,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw z: ``normal`` N(0, I) or ``uniform`` U(-1, 1) (BiGAN's MNIST setting)."""
    if kind == "normal":
        return torch.randn(n, dim, device=device, generator=generator)
    check_choice("noise", kind, NOISE)
    return torch.rand(n, dim, device=device, generator=generator).mul_(2).sub_(1)


# ---------------------------------------------------------------- checkpoints

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
    s = scores.detach().float()
    return torch.sigmoid(s).mean() if logits else s.mean()


def clip_weights_(module: nn.Module, c: float | None) -> None:
    """WGAN's Lipschitz constraint: clamp every weight of ``module`` to [-c, c] (no-op for None)."""
    if c is None:
        return
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)


def _detached(inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(t.detach() for t in inputs)


@dataclass
class _Run:
    """The mutable state of one training run: what a checkpoint stores and a resume restores."""

    setup: GANSetup
    cfg: TrainConfig
    device: torch.device
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    noise_gen: torch.Generator
    hist: torch.Tensor
    world: World = field(default_factory=World)
    batches: Batches | None = None
    config: dict[str, Any] = field(default_factory=dict)
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    step: int = 0
    data_step: int = 0
    critic_updates: int = 0
    elapsed_before: float = 0.0
    t0: float = field(default_factory=time.monotonic)

    def wall_s(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t0

    def noise(self, n: int) -> torch.Tensor:
        """z for ``n`` local samples: drawn for the global batch, this rank's slice kept."""
        s = self.setup
        return self.world.shard(sample_noise(s.noise, n * self.world.size, s.latent_dim, self.device, self.noise_gen))

    def rand(self, shape: tuple[int, ...]) -> torch.Tensor:
        """U[0, 1) numbers for ``shape[0]`` local samples, drawn for the global batch like ``noise``."""
        full = (shape[0] * self.world.size, *shape[1:])
        return self.world.shard(torch.rand(full, device=self.device, generator=self.noise_gen))


def _describe(obj: Any) -> Any:
    """A plain-value description of a view or penalty: its class and its non-network fields."""
    if obj is None:
        return None
    if not hasattr(obj, "__dataclass_fields__"):
        return {"class": getattr(obj, "__qualname__", type(obj).__qualname__)}
    # A field added later with metadata omit_if_default is left out while it has its default,
    # so setups that do not use it keep the signature they had before it existed.
    return {"class": type(obj).__qualname__,
            **{f.name: getattr(obj, f.name) for f in fields(obj) if not isinstance(getattr(obj, f.name), nn.Module)
               and not (f.metadata.get("omit_if_default") and getattr(obj, f.name) == f.default)}}


def _describe_data(data: Batches) -> dict[str, Any]:
    inner = getattr(data, "batches", data)   # the global stream under torchrun
    tensors = getattr(inner, "tensors", ())
    return {"class": type(inner).__qualname__, "batch_size": inner.batch_size,
            "seed": getattr(inner, "seed", None), "name": getattr(inner, "name", None),
            "shapes": [list(t.shape) for t in tensors]}


def _setup_fields(setup: GANSetup) -> dict[str, Any]:
    return {"loss": setup.loss, "view": _describe(setup.view), "penalty": _describe(setup.penalty),
            "schedule": _describe(setup.schedule), "clip_value": setup.clip_value, "noise": setup.noise,
            "latent_dim": setup.latent_dim, "reuse_fake": setup.reuse_fake,
            "modules": {n: ckpt_io.module_signature(m) for n, m in setup.modules().items()}}


def setup_signature(setup: GANSetup) -> dict[str, Any]:
    """The algorithm and the networks of a setup as plain values: what a cached result depends on.

    Two setups with equal signatures train the same way from the same seed; a recipe whose
    networks or settings change gets a new signature, so results cached under the old one
    are not reused (``gan_utils.comparison`` hashes it into its run keys).
    """
    return {**_setup_fields(setup), "opt_g": _describe(setup.opt_g), "opt_d": _describe(setup.opt_d)}


def describe_run(setup: GANSetup, cfg: TrainConfig, data: Batches, opt_g: torch.optim.Optimizer,
                 opt_d: torch.optim.Optimizer) -> dict[str, Any]:
    """What makes resuming meaningful: recorded in every checkpoint and compared on resume.

    Not recorded: the number of processes (a run may resume on another world size), the
    device, the step count, logging and compilation.
    """
    decay = {"lr_decay_from": [setup.opt_g.decay_from, setup.opt_d.decay_from]} \
        if (setup.opt_g.decay_from, setup.opt_d.decay_from) != (None, None) else {}   # absent: constant rates
    return {**_setup_fields(setup),
            "opt_g": ckpt_io.optimizer_signature(opt_g), "opt_d": ckpt_io.optimizer_signature(opt_d),
            **decay, "data": _describe_data(data), "seed": cfg.seed}


def _start(setup: GANSetup, cfg: TrainConfig, world: World, data: Batches) -> _Run:
    """Move the networks to the device, build the optimisers, resume if a checkpoint exists."""
    device = torch.device(cfg.device)
    for m in setup.modules().values():
        m.to(device)
    g_params = [p for m in setup.g_modules().values() for p in m.parameters()]
    run = _Run(setup, cfg, device, setup.opt_g.build(g_params),
               setup.opt_d.build(list(setup.discriminator.parameters())),
               torch.Generator(device=device).manual_seed(cfg.seed),
               torch.zeros(cfg.steps, len(HISTORY_COLUMNS), device=device), world, data)
    run.config = describe_run(setup, cfg, data, run.opt_g, run.opt_d)
    ckpt = Path(cfg.checkpoint_path) if cfg.checkpoint_path else None
    if ckpt is not None:
        ckpt_io.clean_stale_temporaries(ckpt)
        if cfg.resume and ckpt.exists():
            _resume(run, ckpt)
    return run


_REQUIRED = {"step": int, "data_step": int, "critic_updates": int, "wall_s": (int, float),
             "history": torch.Tensor, "snapshots": list, "rng": dict}


def _resume(run: _Run, ckpt: Path) -> None:
    """Check everything first (config, tensors, optimiser state, step, RNG), then load it all."""
    optimizers = {"opt_g": run.opt_g, "opt_d": run.opt_d}
    state = ckpt_io.load_checkpoint(ckpt, expected_config=run.config, modules=run.setup.modules(),
                                    optimizers=optimizers, required=_REQUIRED)
    step = state["step"]
    if step > run.cfg.steps:
        raise ckpt_io.CheckpointError(
            f"checkpoint {ckpt} is at generator step {step}, beyond steps={run.cfg.steps}.\n"
            f"Fix: ask for at least {step} steps, or pass another checkpoint_path.")
    if tuple(state["history"].shape) != (step, len(HISTORY_COLUMNS)) or not 0 <= step <= state["data_step"]:
        raise ckpt_io.CheckpointError(f"checkpoint {ckpt} cannot be resumed: the file is damaged (its history "
                                      f"or step counters are inconsistent).\nFix: {ckpt_io.FIX.format(path=ckpt)}.")
    try:  # try the RNG states on scratch generators before touching the real ones
        torch.Generator().set_state(state["rng"]["torch"])
        torch.Generator(device=run.device).set_state(state["rng"]["noise"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise ckpt_io.CheckpointError(f"checkpoint {ckpt} cannot be resumed: its random-number states are "
                                      f"damaged ({exc}).\nFix: {ckpt_io.FIX.format(path=ckpt)}.") from None
    ckpt_io.apply_checkpoint(state, run.setup.modules(), optimizers)
    run.step, run.data_step = step, state["data_step"]
    run.critic_updates, run.elapsed_before = state["critic_updates"], float(state["wall_s"])
    run.hist[:step] = state["history"].to(run.device)
    run.snapshots = [(int(s), img) for s, img in state["snapshots"]]
    _set_rng_state(state["rng"], run.device, run.noise_gen)


def _write_checkpoint(run: _Run) -> None:
    if not run.cfg.checkpoint_path or not run.world.is_writer:
        return
    _set_learning_rates(run, base=True)
    try:
        save_atomic(ckpt_io.pack_checkpoint(
            run.config, run.setup.modules(), {"opt_g": run.opt_g, "opt_d": run.opt_d},
            step=run.step, data_step=run.data_step, critic_updates=run.critic_updates, wall_s=run.wall_s(),
            history=run.hist[:run.step].cpu(), snapshots=run.snapshots, rng=_rng_state(run.device, run.noise_gen),
        ), run.cfg.checkpoint_path)
    finally:
        _set_learning_rates(run)


def _snapshot(run: _Run, fixed_z: torch.Tensor,
              on_snapshot: Callable[[int, torch.Tensor], None] | None) -> None:
    """G(fixed z) in eval mode (BatchNorm's running statistics), kept on the CPU."""
    G = run.setup.generator
    was_training = G.training
    G.eval()
    with torch.no_grad():
        images = G(fixed_z).float().cpu()
    G.train(was_training)
    run.snapshots.append((run.step, images))
    if on_snapshot is not None:
        on_snapshot(run.step, images)


@dataclass
class _Nets:
    """The callables one step uses: compiled wrappers or the plain modules (same parameters)."""

    G: Callable[..., torch.Tensor]
    D: Callable[..., torch.Tensor]
    view: View
    D_plain: nn.Module          # the penalty's double backward needs the uncompiled critic
    objective: Objective
    amp: Any


def _nets(setup: GANSetup, cfg: TrainConfig, device: torch.device) -> _Nets:
    # Compiled wrappers share their parameters with the plain modules, which stay the
    # ones that are checkpointed, snapshotted (eval mode) and used by the penalty.
    def fast(m: nn.Module) -> Any:
        return torch.compile(m, backend=cfg.compile_backend) if cfg.compile else m

    # bf16 autocast of the forward passes and losses on any device (the penalty's double
    # backward stays in float32); whether it is faster depends on the hardware's bf16 support.
    amp = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if cfg.amp
           else contextlib.nullcontext())
    return _Nets(fast(setup.generator), fast(setup.discriminator), setup.view.map_modules(fast),
                 setup.discriminator, get_objective(setup.loss), amp)


def _set_learning_rates(run: _Run, base: bool = False) -> None:
    """Both optimisers at the rate their spec gives for this step (constant unless it decays).

    ``base=True`` sets the specs' base rates: checkpoints store those, so that a checkpoint's
    optimiser settings compare equal to a fresh run's; the step's rate follows from the step.
    """
    for opt, spec in ((run.opt_g, run.setup.opt_g), (run.opt_d, run.setup.opt_d)):
        for group in opt.param_groups:
            group["lr"] = spec.lr if base else spec.lr_at(run.step, run.cfg.steps)


def _critic_step(run: _Run, nets: _Nets, keep_graph: bool) -> tuple[torch.Tensor, ...]:
    """One discriminator update on a fresh real batch and fresh noise.

    Returns what the generator step may reuse: ``(x, z, real inputs, fake inputs)`` with
    the generator side's graph kept when ``keep_graph`` (``reuse_fake``), plus the
    logged quantities.
    """
    setup, dev = run.setup, run.device
    x = run.batches.batch(run.data_step)[0]
    run.data_step += 1
    z = run.noise(x.shape[0])
    with nets.amp:
        with torch.set_grad_enabled(keep_graph):
            real_in, fake_in = nets.view.real(x), nets.view.fake(nets.G(z), z)
        real_d, fake_d = _detached(real_in), _detached(fake_in)
        s_real, s_fake = nets.D(*real_d), nets.D(*fake_d)
        loss_d = nets.objective.d_loss(s_real, s_fake)
    penalty = (setup.penalty(nets.D_plain, real_d, fake_d, run.rand) if setup.penalty is not None
               else torch.zeros((), device=dev))
    run.opt_d.zero_grad(set_to_none=True)
    (loss_d + penalty).backward()
    run.world.average_gradients(run.opt_d)
    run.opt_d.step()
    clip_weights_(setup.discriminator, setup.clip_value)
    run.critic_updates += 1
    return x, z, real_in, fake_in, loss_d, penalty, s_real, s_fake


def _generator_step(run: _Run, nets: _Nets, x: torch.Tensor, real_in: tuple[torch.Tensor, ...] | None,
                    fake_in: tuple[torch.Tensor, ...] | None) -> torch.Tensor:
    """One update of G (and the view's networks) against the current D, whose weights get no gradient."""
    setup = run.setup
    D = setup.discriminator
    D.requires_grad_(False)
    try:
        with nets.amp:
            if fake_in is None:  # fresh noise, as in Algorithm 1 of the GAN paper
                z = run.noise(x.shape[0])
                fake_in = nets.view.fake(nets.G(z), z)
                real_in = nets.view.real(x) if nets.objective.g_uses_real else None
            s_fake = nets.D(*fake_in)
            s_real = nets.D(*real_in) if nets.objective.g_uses_real else None
            loss_g = nets.objective.g_loss(s_real, s_fake)
        run.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        run.world.average_gradients(run.opt_g)
        run.opt_g.step()
    finally:
        D.requires_grad_(True)
    return loss_g


def train(setup: GANSetup, data: Batches, cfg: TrainConfig,
          on_snapshot: Callable[[int, torch.Tensor], None] | None = None,
          world: World | None = None) -> TrainResult:
    """Train ``setup`` on ``data`` for ``cfg.steps`` generator steps (see the module docstring).

    Under torchrun pass ``world=distributed.init_from_env()``: every rank then trains on its
    slice of each global batch of ``data``, with gradients averaged, and rank 0 alone writes
    the checkpoint (``on_snapshot`` runs on every rank).
    """
    setup.validate()
    cfg.validate()
    world = world or World()
    data = ShardedBatches(data, world) if world.size > 1 else data
    setup.view.check_batch(data.batch_size)
    run = _start(setup, cfg, world, data)
    nets = _nets(setup, cfg, run.device)
    fixed_z = sample_noise(setup.noise, cfg.n_fixed, setup.latent_dim, run.device,
                           torch.Generator(device=run.device).manual_seed(cfg.seed + 1))
    snapshot_every = cfg.snapshot_every or max(1, cfg.steps // 8)
    stopped, checked_until = "completed", run.step
    for m in setup.modules().values():
        m.train()
    if run.step == 0 and not run.snapshots:
        _snapshot(run, fixed_z, on_snapshot)
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not (cfg.progress and world.is_writer), desc="training", unit="step",
               mininterval=2.0)
    run.t0 = time.monotonic()
    try:
        while run.step < cfg.steps:
            _set_learning_rates(run)
            k = setup.schedule(run.step)
            for i in range(k):
                keep = setup.reuse_fake and i == k - 1
                x, z, real_in, fake_in, loss_d, penalty, s_real, s_fake = _critic_step(run, nets, keep)
            if not setup.reuse_fake:
                real_in = fake_in = None
            loss_g = _generator_step(run, nets, x, real_in, fake_in)
            del real_in, fake_in  # free the reused graph before the next critic step
            run.hist[run.step] = torch.stack([
                loss_d.detach().float(), loss_g.detach().float(), _score_summary(s_real, nets.objective.logits),
                _score_summary(s_fake, nets.objective.logits), penalty.detach().float()])
            run.step += 1
            bar.update(1)
            step = run.step
            if step % cfg.log_every == 0 or step == cfg.steps:
                _check_finite(run.hist, checked_until, step)
                checked_until = step
                bar.set_postfix(loss_d=f"{run.hist[step - 1, 0].item():.3f}",
                                loss_g=f"{run.hist[step - 1, 1].item():.3f}")
            if step % snapshot_every == 0 or step == cfg.steps:
                _snapshot(run, fixed_z, on_snapshot)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                _check_finite(run.hist, checked_until, step)
                checked_until = step
                _write_checkpoint(run)
            if cfg.time_budget_s is not None and time.monotonic() - run.t0 > cfg.time_budget_s:
                stopped = f"time budget of {cfg.time_budget_s:g} s reached"
                break
    finally:
        bar.close()
    _check_finite(run.hist, checked_until, run.step)
    if not run.snapshots or run.snapshots[-1][0] != run.step:
        _snapshot(run, fixed_z, on_snapshot)
    _write_checkpoint(run)
    history = run.hist[:run.step].cpu().numpy()
    return TrainResult({c: history[:, i] for i, c in enumerate(HISTORY_COLUMNS)}, run.snapshots, run.step,
                       run.wall_s(), stopped, run.critic_updates)
