"""Checkpoints that are data, never code, and that refuse to resume the wrong run.

A checkpoint is a plain dict of tensors, dicts, lists, tuples, numbers, strings, bools and
None, loaded with ``torch.load(weights_only=True)``: a file someone hands a reader cannot
run code. It records the training configuration, and :func:`load_checkpoint` checks that
configuration, every module's tensors and every optimiser's state against what is about to
be resumed *before* anything is modified; :func:`apply_checkpoint` then loads it. Every
refusal is one :class:`CheckpointError` that names the file, what does not match (or that
the file is damaged) and the fix.

Layout written by :func:`pack_checkpoint`::

    {"format": 1, "config": {...},
     "models": {name: {"class": "MLPGenerator", "state": module.state_dict()}},
     "optimizers": {name: {"class": "Adam", "state": optimizer.state_dict()}},
     **extra}                         # step, rng states, history, ... (the caller's)
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = 1
FIX = "pass another checkpoint_path, or resume=False to start afresh (which overwrites {path})"
# Optimiser flags that choose an implementation, not the mathematics; they may differ
# between machines (fused on CUDA) or torch versions without changing what is resumed.
_IMPLEMENTATION_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)
_MAX_LISTED = 12


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed; the message names the file, the reason and the fix."""


def _error(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} cannot be resumed: {what}\n"
                           f"Fix: {FIX.format(path=path)}.")


# ---------------------------------------------------------------- writing

def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``.NAME.tmp-PID`` beside ``path``, fsync, then ``os.replace``.

    A crash (or a full disk) mid-write leaves the previous checkpoint untouched:
    ``os.replace`` is atomic on POSIX and Windows, and the fsync makes sure the new
    file's bytes are on disk before its name points at them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if os.name == "posix":  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:
            pass  # some file systems refuse fsync on folders; the data itself is synced
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    """True unless ``pid`` is certainly not a running process (so when in doubt, keep the file)."""
    if pid == os.getpid():
        return True  # another thread of this process may be writing it
    if os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. PermissionError: it exists, owned by someone else
    return True


def clean_stale_temporaries(path: str | os.PathLike, *, min_age_s: float = 60.0) -> list[Path]:
    """Remove ``.NAME.tmp-PID`` files beside ``path`` left by writers that were killed.

    A file is removed only when its PID is not a live process here *and* it has not been
    written to for ``min_age_s`` seconds (a writer on another machine sharing the folder
    has a PID that means nothing here). Returns the removed paths.
    """
    import time

    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+)$")
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    for candidate in path.parent.iterdir():
        match = pattern.match(candidate.name)
        if not match or not candidate.is_file() or _pid_alive(int(match.group(1))):
            continue
        try:
            if time.time() - candidate.stat().st_mtime < min_age_s:
                continue
            candidate.unlink()
        except FileNotFoundError:
            continue  # another process cleaned it first
        removed.append(candidate)
    return removed


def check_checkpoint_path(path: str | os.PathLike) -> Path:
    """Refuse, before training, a checkpoint path that could never be written.

    Without this a directory in its place, or a file where its folder should be, is only
    noticed when the first checkpoint is saved -- after the training it was meant to keep.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint_path {path} is a folder, not a file.\n"
                              f"Fix: pass a file name such as {path / 'run.pt'}.")
    existing = next(p for p in (path.parent, *path.parent.parents) if p.exists() or p == Path(p.anchor))
    if not existing.is_dir():
        raise CheckpointError(f"checkpoint_path {path} cannot be written: {existing} is a file, not a folder.\n"
                              f"Fix: pass a checkpoint_path in a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(f"checkpoint_path {path} cannot be written: {existing} is not writable.\n"
                              f"Fix: pass a checkpoint_path in a folder you can write to.")
    return path


def module_signature(module: nn.Module) -> dict[str, Any]:
    """Class, every parameter's and buffer's shape and dtype, and the layers with their settings.

    The layers (``extra_repr``) catch what shapes cannot: another activation, slope or dropout.
    """
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    return {
        "class": type(module).__qualname__,
        "shapes": {name: list(t.shape) for name, t in tensors.items()},
        "dtypes": {name: str(t.dtype).removeprefix("torch.") for name, t in tensors.items()},
        "layers": {name or "(root)": f"{type(m).__qualname__}({m.extra_repr()})"
                   for name, m in module.named_modules()},
    }


def _hyperparameters(group: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in group.items():
        if key == "params" or key in _IMPLEMENTATION_FLAGS:
            continue
        if isinstance(value, torch.Tensor):
            value = value.tolist()
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def optimizer_signature(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Class and, per parameter group, its size and hyperparameters (not the implementation flags)."""
    return {
        "class": type(optimizer).__qualname__,
        "param_groups": [{"params": len(g["params"]), **_hyperparameters(g)} for g in optimizer.param_groups],
    }


def _walk(obj: Any, where: str) -> Iterator[tuple[str, Any]]:
    yield where, obj
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                yield f"{where} key {key!r}", key
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        for i, value in enumerate(obj):
            yield from _walk(value, f"{where}[{i}]")


def pack_checkpoint(config: Mapping[str, Any], modules: Mapping[str, nn.Module],
                    optimizers: Mapping[str, torch.optim.Optimizer], **extra: Any) -> dict[str, Any]:
    """The dict to :func:`save_atomic`; refuses anything ``weights_only`` loading would reject.

    Checking here, when the checkpoint is written, beats a checkpoint that saves fine and
    then cannot be loaded (a NumPy array or a Path in ``extra`` would be one).
    """
    state = {
        "format": FORMAT, "config": dict(config),
        "models": {n: {"class": type(m).__qualname__, "state": m.state_dict()} for n, m in modules.items()},
        "optimizers": {n: {"class": type(o).__qualname__, "state": o.state_dict()} for n, o in optimizers.items()},
        **extra,
    }
    for where, value in _walk(state, "checkpoint"):
        if not isinstance(value, (*_PLAIN, Mapping, list, tuple)):
            raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint "
                            f"holds only tensors, dicts, lists, tuples, numbers, strings, bools and None")
    return state


# ---------------------------------------------------------------- reading

def _read(path: Path, map_location: Any) -> Any:
    if path.is_dir():
        raise _error(path, "it is a folder, not a checkpoint file.")
    if not path.exists():
        raise _error(path, "there is no such file.")
    size = path.stat().st_size
    if size == 0:
        raise _error(path, "the file is empty (a write that never finished?).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": the error below says it
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        code = [line for line in lines if "global" in line.lower() and "unsupported" in line.lower()]
        detail = (code or [line for line in lines if "Unsupported" in line] or lines or [type(exc).__name__])[0]
        if code:  # the weights-only unpickler met a GLOBAL: a class or function to import and call
            raise _error(path, f"it needs code to load ({detail[:200]}); a checkpoint must hold only "
                               f"tensors and plain values, so it was not loaded (nothing in it ran).") from None
        raise _error(path, f"the file is damaged or not a checkpoint ({size:,} bytes; {detail[:200]}).") from None
    except Exception as exc:  # truncated zip, random bytes, unreadable, ...
        detail = (str(exc).strip().splitlines() or [""])[0][:200]
        raise _error(path, f"the file is damaged or not a checkpoint ({size:,} bytes; "
                           f"{type(exc).__name__}: {detail}).") from None


def _diff(saved: Any, wanted: Any, where: str, out: list[str]) -> None:
    """List ``key: checkpoint value vs requested value`` for every difference."""
    if isinstance(saved, Mapping) and isinstance(wanted, Mapping):
        for key in list(saved) + [k for k in wanted if k not in saved]:
            name = f"{where}.{key}" if where else str(key)
            if key not in wanted:
                out.append(f"{name}: {saved[key]!r} in the checkpoint, not set in the requested run")
            elif key not in saved:
                out.append(f"{name}: not recorded in the checkpoint, {wanted[key]!r} requested")
            else:
                _diff(saved[key], wanted[key], name, out)
        return
    nested = any(isinstance(v, (Mapping, list, tuple)) for v in (*saved, *wanted)) if (
        isinstance(saved, (list, tuple)) and isinstance(wanted, (list, tuple))) else False
    if nested and len(saved) == len(wanted):  # lists of plain values (shapes) are shown whole
        for i, (a, b) in enumerate(zip(saved, wanted)):
            _diff(a, b, f"{where}[{i}]", out)
        return
    if isinstance(saved, tuple) or isinstance(wanted, tuple):  # a tuple and a list are the same config
        saved, wanted = (list(v) if isinstance(v, tuple) else v for v in (saved, wanted))
    same = (saved == wanted and type(saved) is type(wanted)) or (
        isinstance(saved, (int, float)) and isinstance(wanted, (int, float))
        and not isinstance(saved, bool) and not isinstance(wanted, bool) and saved == wanted)
    if isinstance(saved, float) and isinstance(wanted, float) and math.isnan(saved) and math.isnan(wanted):
        same = True
    if not same:
        out.append(f"{where}: {saved!r} in the checkpoint vs {wanted!r} requested")


def _listed(problems: list[str]) -> str:
    shown = problems[:_MAX_LISTED]
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    return "\n  - " + "\n  - ".join(shown) + more


def _entry(path: Path, state: dict, section: str, name: str) -> dict:
    entries = state.get(section)
    if not isinstance(entries, Mapping) or name not in entries:
        have = sorted(entries) if isinstance(entries, Mapping) else []
        raise _error(path, f"it holds no {section[:-1]} {name!r} (it has {have}).")
    entry = entries[name]
    if not isinstance(entry, Mapping) or "class" not in entry or not isinstance(entry.get("state"), Mapping):
        raise _error(path, f"its {section[:-1]} entry {name!r} is damaged (no class and state).")
    return entry


def _entries(path: Path, state: dict, section: str, wanted: Mapping[str, Any], kind: str) -> dict[str, dict]:
    """The checkpoint's entries of ``section`` for every name in ``wanted``, or one clear error."""
    saved_names = set(state[section]) if isinstance(state.get(section), Mapping) else set()
    if saved_names != set(wanted):
        raise _error(path, f"it holds the {kind} {sorted(saved_names)}, this run has {sorted(wanted)}.")
    return {name: _entry(path, state, section, name) for name in wanted}


def _check_modules(path: Path, state: dict, modules: Mapping[str, nn.Module]) -> None:
    entries = _entries(path, state, "models", modules, "modules")
    problems: list[str] = []
    for name, module in modules.items():
        entry = entries[name]
        if entry["class"] != type(module).__qualname__:
            problems.append(f"{name}: class {entry['class']} in the checkpoint vs {type(module).__qualname__} requested")
        saved, current = entry["state"], module.state_dict()
        for key in [k for k in current if k not in saved]:
            problems.append(f"{name}.{key}: missing from the checkpoint")
        for key in [k for k in saved if k not in current]:
            problems.append(f"{name}.{key}: in the checkpoint, not in the requested module")
        for key in [k for k in saved if k in current]:
            value, want = saved[key], current[key]
            if not isinstance(value, torch.Tensor):
                problems.append(f"{name}.{key}: a {type(value).__name__} in the checkpoint, not a tensor")
            elif value.shape != want.shape:
                problems.append(f"{name}.{key}: shape {list(value.shape)} in the checkpoint vs "
                                f"{list(want.shape)} requested")
            elif value.dtype != want.dtype:
                problems.append(f"{name}.{key}: dtype {value.dtype} in the checkpoint vs {want.dtype} requested")
            elif value.is_floating_point() and not bool(torch.isfinite(value).all()):
                problems.append(f"{name}.{key}: holds NaN or infinite values")
    if problems:
        raise _error(path, "its modules are damaged or do not match the ones to resume:" + _listed(problems))


def _state_keys(optimizer: torch.optim.Optimizer, group: Mapping[str, Any]) -> set[str] | None:
    """The per-parameter state keys this optimiser class makes with these settings (one scratch step)."""
    hyper = {k: v for k, v in group.items() if k != "params" and k not in _IMPLEMENTATION_FLAGS}
    p = nn.Parameter(torch.zeros(1))
    try:
        scratch = type(optimizer)([{"params": [p], **hyper}])
        p.grad = torch.zeros(1)
        scratch.step()
    except Exception:  # an optimiser that needs a closure or more: skip this check
        return None
    return set(scratch.state[p])


def _check_optimizers(path: Path, state: dict, optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    entries = _entries(path, state, "optimizers", optimizers, "optimisers")
    problems: list[str] = []
    for name, opt in optimizers.items():
        entry = entries[name]
        if entry["class"] != type(opt).__qualname__:
            problems.append(f"{name}: {entry['class']} in the checkpoint vs {type(opt).__qualname__} requested")
            continue
        saved = entry["state"]
        groups, per_param = saved.get("param_groups"), saved.get("state")
        if not isinstance(groups, list) or not isinstance(per_param, Mapping) or not all(
                isinstance(g, Mapping) and isinstance(g.get("params"), list) for g in groups):
            problems.append(f"{name}: damaged optimiser state (no param_groups/state)")
            continue
        if len(groups) != len(opt.param_groups):
            problems.append(f"{name}: {len(groups)} parameter groups in the checkpoint vs "
                            f"{len(opt.param_groups)} requested")
            continue
        params: dict[int, torch.Tensor] = {}
        for i, (g_saved, g_now) in enumerate(zip(groups, opt.param_groups)):
            if len(g_saved["params"]) != len(g_now["params"]):
                problems.append(f"{name}.param_groups[{i}]: {len(g_saved['params'])} parameters in the "
                                f"checkpoint vs {len(g_now['params'])} requested")
                continue
            now = _hyperparameters(g_now)
            for key, value in _hyperparameters(g_saved).items():
                if key in now and now[key] != value:
                    problems.append(f"{name}.param_groups[{i}].{key}: {value!r} in the checkpoint vs "
                                    f"{now[key]!r} requested")
            params.update(zip(g_saved["params"], g_now["params"]))
            expected_keys = _state_keys(opt, g_now)
            for index in g_saved["params"]:
                slot = per_param.get(index)
                if slot is None:
                    continue  # a parameter that never had a gradient has no state
                if not isinstance(slot, Mapping):
                    problems.append(f"{name}.state[{index}]: damaged")
                    continue
                if expected_keys is not None and set(slot) != expected_keys:
                    problems.append(f"{name}.state[{index}]: keys {sorted(slot)} in the checkpoint vs "
                                    f"{sorted(expected_keys)} for {type(opt).__qualname__} as requested")
                    break
        for index, slot in per_param.items():
            if index not in params:
                problems.append(f"{name}.state[{index!r}]: no such parameter in the requested optimiser")
                continue
            for key, value in (slot.items() if isinstance(slot, Mapping) else ()):
                if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[index].shape:
                    problems.append(f"{name}.state[{index}].{key}: shape {list(value.shape)} in the checkpoint "
                                    f"vs parameter shape {list(params[index].shape)}")
    if problems:
        raise _error(path, "its optimiser state does not match the optimisers to resume:" + _listed(problems))


def _check_required(path: Path, state: dict, required: Mapping[str, type | tuple[type, ...]]) -> None:
    problems = []
    for key, kind in required.items():
        if key not in state:
            problems.append(f"{key}: missing")
        elif not isinstance(state[key], kind) or (isinstance(state[key], bool) and bool not in (
                kind if isinstance(kind, tuple) else (kind,))):
            problems.append(f"{key}: a {type(state[key]).__name__} in the checkpoint")
    if problems:
        raise _error(path, "the file is damaged:" + _listed(problems))


def load_checkpoint(path: str | os.PathLike, *, expected_config: Mapping[str, Any],
                    modules: Mapping[str, nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
                    required: Mapping[str, type | tuple[type, ...]] | None = None,
                    map_location: Any = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint against the run about to resume; modify nothing.

    Checks, in order: the file loads as data (``weights_only=True``); it has this format and
    a recorded configuration equal to ``expected_config`` (all differences listed); the
    ``required`` extra entries exist with these types; every module's state matches in
    names, shapes, dtypes and finiteness; every optimiser has the same class, groups,
    hyperparameters and per-parameter state. Returns the loaded dict for
    :func:`apply_checkpoint`. ``map_location="cpu"`` keeps RNG states on the CPU, where
    ``torch.set_rng_state`` needs them; modules and optimisers copy to their own device.
    """
    path = Path(path)
    state = _read(path, map_location)
    if not isinstance(state, dict):
        raise _error(path, f"it holds a {type(state).__name__}, not a training checkpoint.")
    if "format" not in state or "config" not in state:
        raise _error(path, "it records no training configuration (it was written by an older version "
                           "of gan_utils, or by something else), so resuming it cannot be checked.")
    if state["format"] != FORMAT:
        raise _error(path, f"it has checkpoint format {state['format']!r}; this version reads format {FORMAT}.")
    if not isinstance(state["config"], Mapping):
        raise _error(path, "its recorded configuration is damaged (not a dict).")
    differences: list[str] = []
    _diff(state["config"], dict(expected_config), "", differences)
    if differences:
        raise _error(path, "it was written by a run with another configuration:" + _listed(differences))
    _check_required(path, state, required or {})
    _check_modules(path, state, modules)
    _check_optimizers(path, state, optimizers)
    return state


def apply_checkpoint(state: Mapping[str, Any], modules: Mapping[str, nn.Module],
                     optimizers: Mapping[str, torch.optim.Optimizer]) -> None:
    """Load a checkpoint returned by :func:`load_checkpoint` into the modules and optimisers.

    The structural checks run again first (they are cheap), so a dict that did not come
    from :func:`load_checkpoint` cannot half-apply.
    """
    where = Path("<loaded checkpoint>")
    _check_modules(where, dict(state), modules)
    _check_optimizers(where, dict(state), optimizers)
    for name, module in modules.items():
        module.load_state_dict(state["models"][name]["state"])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name]["state"])
