"""Divergences, 1D densities and exact optimal transport for the theory chapters.

The theory notebooks derive a claim and then check it against an independent
computation. The functions here are the small, reusable half of those checks:

* discrete KL / JS with the conventions ``0 log 0 = 0`` and ``p log(p/0) = inf``,
  and their versions for densities tabulated on a grid (trapezoidal rule);
* Gaussian and Gaussian-mixture densities, and the Gaussian KL in closed form;
* the optimal discriminator ``D* = p_data / (p_data + p_g)``, the value function
  ``V(D, G)`` and the virtual training criterion ``C(G) = V(D*, G)`` on a grid;
* the Earth-Mover distance W1 between discrete distributions, as the primal
  transport LP and as the Kantorovich-Rubinstein dual LP (both with
  ``scipy.optimize.linprog``), and in 1D as the area between the two CDFs.

Everything works in nats (natural log) unless ``base`` says otherwise.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linprog

# numpy >= 2 calls it trapezoid; older releases (still found on some Colab images) trapz.
_trapz = getattr(np, "trapezoid", None) or np.trapz

__all__ = [
    "entropy", "cross_entropy", "kl_divergence", "js_divergence",
    "kl_divergence_grid", "js_divergence_grid",
    "gaussian_pdf", "mixture_pdf", "kl_gaussians",
    "optimal_discriminator", "value_of_game", "virtual_training_criterion",
    "cost_matrix", "ot_primal_lp", "w1_dual_lp", "w1_1d_cdf", "w1_grid",
]


# --------------------------------------------------------------------------- helpers

def _log(base: float | None) -> float:
    """ln(base), the divisor that turns nats into another unit; 1 for nats."""
    if base is None:
        return 1.0
    if not base > 0 or base == 1:
        raise ValueError(f"base must be positive and not 1 (e.g. 2 for bits, None for nats), got {base!r}")
    return math.log(base)


def _as_pair(p: ArrayLike, q: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {p.shape} and {q.shape}")
    if np.any(p < 0) or np.any(q < 0) or not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        raise ValueError("probabilities / densities must be finite and non-negative")
    return p, q


def _check_distribution(name: str, p: np.ndarray, atol: float = 1e-6) -> None:
    total = float(p.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (a probability vector), its sum is {total:.6g}")


def _xlogy_ratio(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Pointwise p log(p/q) with 0 log(0/q) = 0 and p log(p/0) = inf for p > 0."""
    out = np.zeros_like(p)
    pos = p > 0
    with np.errstate(divide="ignore"):
        out[pos] = p[pos] * (np.log(p[pos]) - np.log(q[pos]))
    return out


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """Trapezoidal rule that keeps +inf (numpy would give nan for inf - inf differences)."""
    if np.any(np.isposinf(y)):
        return math.inf
    return float(_trapz(y, x))


def _check_grid(x: ArrayLike, *arrays: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or len(x) < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("x must be a 1D, strictly increasing grid with at least 2 points")
    for a in arrays:
        if a.shape != x.shape:
            raise ValueError(f"density values must be tabulated on x: shape {a.shape} vs grid {x.shape}")
    return x


# --------------------------------------------------------------------------- discrete divergences

def entropy(p: ArrayLike, base: float | None = None) -> float:
    """H(p) = -sum p log p (0 log 0 = 0): the cost of coding p with its own code."""
    p, _ = _as_pair(p, p)
    _check_distribution("p", p)
    pos = p > 0
    return float(-(p[pos] * np.log(p[pos])).sum() / _log(base))


def cross_entropy(p: ArrayLike, q: ArrayLike, base: float | None = None) -> float:
    """H(p, q) = -sum p log q: coding p with q's code; inf if q misses part of p's support."""
    p, q = _as_pair(p, q)
    _check_distribution("p", p)
    _check_distribution("q", q)
    pos = p > 0
    if np.any(q[pos] == 0):
        return math.inf
    return float(-(p[pos] * np.log(q[pos])).sum() / _log(base))


def kl_divergence(p: ArrayLike, q: ArrayLike, base: float | None = None) -> float:
    """KL(p || q) = sum p log(p / q) for probability vectors.

    Conventions: terms with p = 0 contribute 0; a term with p > 0 and q = 0 makes
    the divergence +inf (q declares impossible something p produces).
    """
    p, q = _as_pair(p, q)
    _check_distribution("p", p)
    _check_distribution("q", q)
    return float(_xlogy_ratio(p, q).sum() / _log(base))


def js_divergence(p: ArrayLike, q: ArrayLike, base: float | None = None) -> float:
    """JS(p, q) = KL(p || m)/2 + KL(q || m)/2 with the mixture m = (p + q)/2.

    Always finite (m > 0 wherever p or q is), symmetric, and at most log 2
    (one bit when ``base=2``), reached exactly when p and q are mutually singular
    (for probability vectors: no outcome has p > 0 and q > 0).
    """
    p, q = _as_pair(p, q)
    _check_distribution("p", p)
    _check_distribution("q", q)
    m = 0.5 * (p + q)
    return float(0.5 * (_xlogy_ratio(p, m).sum() + _xlogy_ratio(q, m).sum()) / _log(base))


# --------------------------------------------------------------------------- densities on a grid

def kl_divergence_grid(p: ArrayLike, q: ArrayLike, x: ArrayLike) -> float:
    """KL(p || q) = integral p log(p/q) dx for densities tabulated on the grid ``x`` (nats).

    The grid must cover the mass of both densities; the trapezoidal rule makes
    the error O(dx^2) for smooth densities.
    """
    p, q = _as_pair(p, q)
    x = _check_grid(x, p, q)
    return _trapezoid(_xlogy_ratio(p, q), x)


def js_divergence_grid(p: ArrayLike, q: ArrayLike, x: ArrayLike) -> float:
    """JS(p, q) for densities on the grid ``x``, through the mixture m = (p + q)/2 (nats)."""
    p, q = _as_pair(p, q)
    x = _check_grid(x, p, q)
    m = 0.5 * (p + q)
    return _trapezoid(0.5 * (_xlogy_ratio(p, m) + _xlogy_ratio(q, m)), x)


def gaussian_pdf(x: ArrayLike, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """Density of N(mean, std^2) at x."""
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std!r}")
    z = (np.asarray(x, dtype=float) - mean) / std
    return np.exp(-0.5 * z * z) / (std * math.sqrt(2 * math.pi))


def mixture_pdf(x: ArrayLike, weights: ArrayLike, means: ArrayLike, stds: ArrayLike) -> np.ndarray:
    """Density of the Gaussian mixture sum_k w_k N(mean_k, std_k^2) at x (weights sum to 1)."""
    w = np.asarray(weights, dtype=float)
    mu, sd = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
    if not (w.shape == mu.shape == sd.shape) or w.ndim != 1:
        raise ValueError("weights, means and stds must be 1D and of equal length")
    if np.any(w < 0):
        raise ValueError("mixture weights must be non-negative")
    _check_distribution("weights", w)
    x = np.asarray(x, dtype=float)
    return sum(wk * gaussian_pdf(x, mk, sk) for wk, mk, sk in zip(w, mu, sd))


def kl_gaussians(mean1: float, std1: float, mean2: float, std2: float) -> float:
    """KL(N(mean1, std1^2) || N(mean2, std2^2)) in closed form (nats)."""
    if not (std1 > 0 and std2 > 0):
        raise ValueError("standard deviations must be > 0")
    return math.log(std2 / std1) + (std1**2 + (mean1 - mean2) ** 2) / (2 * std2**2) - 0.5


# --------------------------------------------------------------------------- the GAN game on a grid

def optimal_discriminator(p_data: ArrayLike, p_g: ArrayLike) -> np.ndarray:
    """D*(x) = p_data / (p_data + p_g), pointwise.

    Where both densities vanish D* is not determined (that set has no mass under
    either distribution); 1/2 is returned there so plots stay finite.
    """
    p, q = _as_pair(p_data, p_g)
    s = p + q
    out = np.full_like(p, 0.5)
    np.divide(p, s, out=out, where=s > 0)
    return out


def value_of_game(d: ArrayLike, p_data: ArrayLike, p_g: ArrayLike, x: ArrayLike) -> float:
    """V(D, G) = integral p_data log D + p_g log(1 - D) dx for D, densities on the grid ``x``.

    Uses 0 log 0 = 0, so a discriminator that is certain (D = 0 or 1) only costs
    -inf where the corresponding density is positive.
    """
    p, q = _as_pair(p_data, p_g)
    d = np.asarray(d, dtype=float)
    x = _check_grid(x, p, q, d)
    if np.any(d < 0) or np.any(d > 1):
        raise ValueError("a discriminator's outputs must lie in [0, 1]")
    with np.errstate(divide="ignore"):
        a = np.where(p > 0, p * np.log(np.where(p > 0, d, 1.0)), 0.0)
        b = np.where(q > 0, q * np.log(np.where(q > 0, 1.0 - d, 1.0)), 0.0)
    y = a + b
    if np.any(np.isneginf(y)):
        return -math.inf
    return float(_trapz(y, x))


def virtual_training_criterion(p_data: ArrayLike, p_g: ArrayLike, x: ArrayLike) -> float:
    """C(G) = max_D V(D, G) = V(D*, G) on the grid; equals 2 JS(p_data, p_g) - log 4.

    Written as p log(p/(p+q)) + q log(q/(p+q)) rather than through D*: where p_g
    is negligible next to p_data, 1 - D* rounds to 0 and log(1 - D*) to -inf.
    """
    p, q = _as_pair(p_data, p_g)
    x = _check_grid(x, p, q)
    s = p + q
    return _trapz(_xlogy_ratio(p, s) + _xlogy_ratio(q, s), x)


# --------------------------------------------------------------------------- optimal transport

def _points(x: ArrayLike) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[:, None] if x.ndim == 1 else x


def cost_matrix(xs: ArrayLike, ys: ArrayLike) -> np.ndarray:
    """Euclidean distances ||x_i - y_j|| between two point sets (1D arrays are points on a line)."""
    a, b = _points(xs), _points(ys)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"points live in different dimensions: {a.shape[1]} and {b.shape[1]}")
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def ot_primal_lp(a: ArrayLike, b: ArrayLike, cost: ArrayLike) -> tuple[float, np.ndarray]:
    """min_gamma <gamma, cost> over couplings of a and b, solved as an LP (HiGHS).

    Variables are the n*m entries of the plan gamma >= 0; equality constraints fix
    its row sums to ``a`` and column sums to ``b``. Returns (cost, plan).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    c = np.asarray(cost, dtype=float)
    n, m = len(a), len(b)
    if c.shape != (n, m):
        raise ValueError(f"cost must have shape ({n}, {m}), got {c.shape}")
    _check_distribution("a", a)
    _check_distribution("b", b)
    rows = np.kron(np.eye(n), np.ones((1, m)))   # sum_j gamma_ij = a_i
    cols = np.kron(np.ones((1, n)), np.eye(m))   # sum_i gamma_ij = b_j
    res = linprog(c.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]),
                  bounds=(0, None), method="highs")
    if not res.success:
        raise RuntimeError(f"transport LP failed: {res.message}")
    return float(res.fun), res.x.reshape(n, m)


def w1_dual_lp(xs: ArrayLike, a: ArrayLike, ys: ArrayLike, b: ArrayLike,
               power: float = 1.0) -> tuple[float, np.ndarray, np.ndarray]:
    """Kantorovich-Rubinstein dual: max sum_i a_i f(x_i) - sum_j b_j f(y_j) over 1-Lipschitz f.

    Only f's values on the union of the supports matter, so the unknowns are those
    values, with |f(z_k) - f(z_l)| <= ||z_k - z_l|| for every pair. f is fixed to 0
    at the first point (adding a constant changes nothing). Returns (W1, f(xs), f(ys)).

    With ``power`` p != 1 the constraints use the cost ||z_k - z_l||**p. This
    one-potential LP is the dual of the *transshipment* problem (mass may travel
    through intermediate support points); it equals the transport problem only when
    the cost obeys the triangle inequality (p <= 1), so for p > 1 it can be smaller.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    px, py = _points(xs), _points(ys)
    if len(px) != len(a) or len(py) != len(b):
        raise ValueError("each support point needs exactly one weight")
    _check_distribution("a", a)
    _check_distribution("b", b)
    z = np.vstack([px, py])
    k = len(z)
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power!r}")
    dist = cost_matrix(z, z) ** power
    i, j = np.where(~np.eye(k, dtype=bool))          # all ordered pairs k != l
    a_ub = np.zeros((len(i), k))
    a_ub[np.arange(len(i)), i] = 1.0                  # f_k - f_l <= d(z_k, z_l)
    a_ub[np.arange(len(i)), j] = -1.0
    objective = -np.concatenate([a, -b])              # linprog minimises
    bounds = [(0.0, 0.0)] + [(None, None)] * (k - 1)
    res = linprog(objective, A_ub=a_ub, b_ub=dist[i, j], bounds=bounds, method="highs")
    if not res.success:
        raise RuntimeError(f"dual LP failed: {res.message}")
    f = res.x
    return float(-res.fun), f[: len(a)], f[len(a):]


def w1_1d_cdf(x: ArrayLike, a: ArrayLike, y: ArrayLike, b: ArrayLike) -> float:
    """W1 between two discrete distributions on the line as integral |F_a - F_b| (exact).

    Both CDFs are step functions that only change at the support points, so the
    integral is a finite sum over the gaps between consecutive sorted points.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or y.ndim != 1 or x.shape != a.shape or y.shape != b.shape:
        raise ValueError("x, a (and y, b) must be 1D arrays of equal length")
    _check_distribution("a", a)
    _check_distribution("b", b)
    pts = np.concatenate([x, y])
    mass = np.concatenate([a, -b])       # F_a - F_b jumps by +a_i at x_i and -b_j at y_j
    order = np.argsort(pts, kind="stable")
    pts, diff_cdf = pts[order], np.cumsum(mass[order])
    return float(np.sum(np.abs(diff_cdf[:-1]) * np.diff(pts)))


def w1_grid(p: ArrayLike, q: ArrayLike, x: ArrayLike) -> float:
    """W1 between two 1D densities tabulated on ``x``: integral |F_p - F_q| dx.

    The CDFs are built with the trapezoidal rule from the left end of the grid,
    so the grid must cover both distributions' mass.
    """
    p, q = _as_pair(p, q)
    x = _check_grid(x, p, q)
    dx = np.diff(x)
    f_p = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * dx)])
    f_q = np.concatenate([[0.0], np.cumsum(0.5 * (q[1:] + q[:-1]) * dx)])
    return float(_trapz(np.abs(f_p - f_q), x))
