"""Run profiles and parameter validation.

Every notebook has a papermill ``parameters`` cell (``profile``, ``seed``,
``device``, ``data_dir``). The profile decides how much work a run does:

* ``smoke`` -- seconds; only proves the code path runs (CI).
* ``quick`` -- minutes on a laptop CPU; results are recognisable.
* ``full``  -- the quality run, meant for a GPU.
* ``auto``  -- ``full`` when CUDA is available, else ``quick``.

Bad values fail early with a ``ValueError`` that lists the valid choices, so a
typo in ``papermill -p profile quikc`` never silently trains the wrong thing.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import torch

PROFILES: tuple[str, ...] = ("smoke", "quick", "full", "auto")
CONCRETE_PROFILES: tuple[str, ...] = ("smoke", "quick", "full")

# Seeds are combined later (``seed + 1`` for the fixed noise, ``seed * 1_000_003 + epoch`` per
# epoch in gan_utils.data) and fed to NumPy, whose seeds stop at 2**32 - 1. Capping seeds there
# keeps every derived seed far inside torch's 64-bit range, whatever the run length.
SEED_MAX = 2**32 - 1

T = TypeVar("T")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError naming them."""
    choices = tuple(choices)
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid choices are: {listed}")
    return value


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> Any:
    """Reject non-numbers, NaN, infinity and non-positive values with a message naming the parameter.

    Infinity is refused because it only surfaces later, as NaN losses, far from its cause.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value != value or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    if isinstance(value, float) and math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an ``int`` if it is a true integer within [minimum, maximum].

    Floats are refused even when whole (2.5 would otherwise be truncated to 2, and 3.0
    usually means a computed value that was meant to be rounded on purpose); so are bools
    and strings. NumPy integers are accepted.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        hint = f" (write {int(value)} if that is meant)" if isinstance(value, float) and value.is_integer() else ""
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__}){hint}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f"{minimum} <= "
        high = "" if maximum is None else f" <= {maximum}"
        raise ValueError(f"{name} must be an integer with {low}{name}{high}, got {value}")
    return value


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer in [0, SEED_MAX] (see ``SEED_MAX`` for why the range stops there)."""
    return check_int(name, value, minimum=0, maximum=SEED_MAX)


def resolve_profile(profile: str, device: str | torch.device | None = None) -> str:
    """Turn ``auto`` into ``full`` (CUDA) or ``quick`` (anything else); validate the rest."""
    check_choice("profile", profile, PROFILES)
    if profile != "auto":
        return profile
    kind = torch.device(device).type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    return "full" if kind == "cuda" else "quick"


def profile_settings(profile: str, table: Mapping[str, Mapping[str, T]],
                     device: str | torch.device | None = None) -> dict[str, T]:
    """Pick one profile's row from a notebook's settings table (after resolving ``auto``).

    ``table`` must define every concrete profile; a missing row is a bug in the
    notebook, reported as such rather than as a user error.
    """
    concrete = resolve_profile(profile, device)
    missing = [p for p in CONCRETE_PROFILES if p not in table]
    if missing:
        raise KeyError(f"settings table lacks profiles {missing}")
    return dict(table[concrete])
