"""Sparse identification of nonlinear dynamics (SINDy) with model selection and uncertainty.

Given a multivariate series ``x(t)`` (e.g. log central density, log velocity dispersion and
log core radius of a star cluster), SINDy (Brunton, Proctor & Kutz 2016) regresses smoothed
time derivatives on a library of candidate terms (polynomials by default) with sequentially
thresholded least squares (STLSQ).  This module adds what a diagnostic needs around the
``pysindy`` 2.x estimator:

* :func:`smoothed_derivative`: Savitzky-Golay smoothed finite differences;
* :func:`fit_sindy`: the STLSQ threshold chosen on a grid by an information criterion
  (AICc or BIC of the derivative residuals; Mangan et al. 2017);
* :func:`ensemble_sindy`: bootstrap ("bagging") ensembles of the regression (Fasel et al.
  2022) giving coefficient medians, spreads and inclusion probabilities, with an explicit
  random generator (pysindy's own ensembling draws from numpy's global state);
* :func:`forecast_skill`: how well the discovered model predicts held-out data (derivative
  R^2, trajectory error and the valid-prediction time).

Example:
    >>> import numpy as np
    >>> t = np.linspace(0, 10, 1001)
    >>> x = np.c_[np.exp(-0.5 * t), np.exp(-2.0 * t)]  # dx/dt = -0.5 x, dy/dt = -2 y
    >>> fit = fit_sindy(x, t, degree=1)
    >>> np.round(fit.coefficients, 2).tolist()
    [[0.0, -0.5, 0.0], [0.0, 0.0, -2.0]]

References:
    Brunton, Proctor & Kutz (2016), PNAS 113, 3932 (SINDy).
    Mangan, Kutz, Brunton & Proctor (2017), Proc. R. Soc. A 473, 20170009 (model
    selection by information criteria).
    Fasel, Kutz, Brunton & Brunton (2022), Proc. R. Soc. A 478, 20210904 (ensemble SINDy).
    Kaptanoglu et al. (2022), JOSS 7, 3994 (pysindy).
    Pasquato et al. (2023), arXiv:2311.16306 (SINDy on star-cluster core oscillations).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, NonFiniteError, ShapeError

__all__ = [
    "smoothed_derivative",
    "fit_sindy",
    "ensemble_sindy",
    "forecast_skill",
    "SindyFit",
    "SindyEnsemble",
]


def _ps():
    try:
        import pysindy
    except ImportError as err:  # pragma: no cover - pysindy is a dependency
        raise ImportError(
            "SINDy diagnostics need pysindy 2.x: pip install 'pysindy>=2,<3'") from err
    return pysindy


def _check(x: np.ndarray, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ShapeError(f"x must be (n_samples, n_variables), got shape {x.shape}")
    if x.shape[0] < 12:
        raise ShapeError(f"x needs at least 12 samples for smoothed derivatives, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise NonFiniteError("x contains NaN or infinite values; remove or interpolate them")
    if np.ndim(t) == 0:
        t = float(t) * np.arange(x.shape[0])
    t = np.asarray(t, dtype=np.float64)
    if t.shape != (x.shape[0],):
        raise ShapeError(f"t must be a scalar step or have shape ({x.shape[0]},), got {t.shape}")
    if not (np.diff(t) > 0).all():
        raise ConfigError("t must be strictly increasing")
    return x, t


def smoothed_derivative(x: np.ndarray, t: np.ndarray | float, window: int = 11,
                        polyorder: int = 3) -> np.ndarray:
    """Time derivative of ``x (n, d)`` by Savitzky-Golay smoothing then finite differences.

    Args:
        x: samples ``(n, d)`` (or ``(n,)``).
        t: times ``(n,)`` or a constant step.
        window: odd smoothing window in samples (``polyorder < window``).
        polyorder: order of the local polynomial.

    Returns:
        ``(n, d)`` derivatives in units of ``x`` per unit of ``t``.
    """
    x, t = _check(x, t)
    if window % 2 == 0 or window <= polyorder:
        raise ConfigError(f"window must be odd and > polyorder, got {window}, {polyorder}")
    sfd = _ps().SmoothedFiniteDifference(
        smoother_kws={"window_length": window, "polyorder": polyorder}, axis=0)
    return np.asarray(sfd._differentiate(x, t))


def _library(degree: int):
    return _ps().PolynomialLibrary(degree=degree)


def _regress(theta: np.ndarray, y: np.ndarray, threshold: float, alpha: float) -> np.ndarray:
    """STLSQ (pysindy) on a precomputed library matrix: coefficients ``(d, p)``."""
    opt = _ps().STLSQ(threshold=threshold, alpha=alpha, max_iter=50)
    with warnings.catch_warnings():
        # a threshold above every coefficient is a legitimate grid point: it scores inf
        warnings.filterwarnings("ignore", message="Sparsity parameter is too big")
        opt.fit(theta, y)
    return np.asarray(opt.coef_).reshape(y.shape[1], theta.shape[1])


def _ic(rss: float, n: int, k: int, criterion: str) -> float:
    rss = max(rss, 1e-300)
    if criterion == "aicc":
        corr = 2.0 * k * (k + 1) / max(n - k - 1, 1)
        return n * math.log(rss / n) + 2.0 * k + corr
    if criterion == "bic":
        return n * math.log(rss / n) + k * math.log(n)
    raise ConfigError(f"unknown criterion {criterion!r}; use 'aicc' or 'bic'")


@dataclass
class SindyFit:
    """A discovered model.

    Attributes:
        coefficients: ``(d, p)`` coefficients of the ``p`` library terms for each of the
            ``d`` equations.
        feature_names: names of the library terms (``p``).
        variable_names: names of the ``d`` variables.
        threshold: the STLSQ threshold used.
        degree: polynomial degree of the library.
        selection: one row per threshold tried: ``(threshold, n_terms, rss, criterion)``.
        model: the fitted ``pysindy.SINDy`` (for ``predict``/``simulate``).
    """

    coefficients: np.ndarray
    feature_names: list[str]
    variable_names: list[str]
    threshold: float
    degree: int
    selection: np.ndarray
    model: object = field(repr=False)

    @property
    def support(self) -> np.ndarray:
        """Boolean ``(d, p)``: which terms are active."""
        return self.coefficients != 0

    def equations(self, precision: int = 3) -> list[str]:
        """Human-readable right-hand sides, one per variable."""
        out = []
        for i, name in enumerate(self.variable_names):
            terms = [f"{c:+.{precision}g}" + ("" if f == "1" else f" {f}")
                     for c, f in zip(self.coefficients[i], self.feature_names, strict=True) if c]
            out.append(f"d{name}/dt = " + (" ".join(terms) if terms else "0"))
        return out

    def rhs(self, x: np.ndarray) -> np.ndarray:
        """The model's time derivative at states ``x (n, d)``."""
        return np.asarray(self.model.predict(np.atleast_2d(np.asarray(x, dtype=np.float64))))

    def simulate(self, x0: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Integrates the model from ``x0 (d,)`` at times ``t (n,)`` (LSODA); ``(n, d)``.

        Rows after a blow-up (the integrator stopping early, or any variable exceeding 1,000
        times ``1 + max |x0|``) are filled with NaN.
        """
        from scipy.integrate import solve_ivp

        t = np.asarray(t, dtype=np.float64)
        x0 = np.asarray(x0, dtype=np.float64)
        bound = 1e3 * (1.0 + float(np.abs(x0).max()))

        def blow_up(_s: float, y: np.ndarray) -> float:  # stops the integration at |y| = bound
            return bound - float(np.abs(y).max()) if np.isfinite(y).all() else -1.0

        blow_up.terminal = True  # type: ignore[attr-defined]

        def rhs(_s: float, y: np.ndarray) -> np.ndarray:
            if not np.isfinite(y).all():
                return np.zeros_like(y)  # the event ends the run; keep LSODA from crashing
            return self.rhs(y[None])[0]

        sol = solve_ivp(rhs, (t[0], t[-1]), x0, t_eval=t, method="LSODA", rtol=1e-8,
                        atol=1e-10, events=blow_up)
        out = np.full((t.size, self.coefficients.shape[0]), np.nan)
        out[: sol.y.shape[1]] = sol.y.T
        return out


def fit_sindy(x: np.ndarray, t: np.ndarray | float, *, degree: int = 2,
              thresholds: np.ndarray | None = None, criterion: str = "aicc",
              alpha: float = 1e-6, window: int = 11, polyorder: int = 3,
              variable_names: list[str] | None = None) -> SindyFit:
    """Fits SINDy, choosing the STLSQ threshold by an information criterion.

    For every threshold of the grid the sparse regression is solved and scored by
    AICc (or BIC) of the derivative residuals, ``n log(RSS / n) + 2k + 2k(k+1)/(n-k-1)``
    with ``k`` active terms and ``n = n_samples * d``; the lowest score wins.

    Args:
        x: samples ``(n, d)``; t: times ``(n,)`` or a constant step.
        degree: polynomial library degree.
        thresholds: grid of STLSQ thresholds (default: 30 log-spaced values from 1e-3 to
            1 times the largest least-squares coefficient).  Information criteria assume
            independent residuals; the systematic error of smoothed derivatives makes them
            favour tiny spurious terms on clean data, so the default grid stops three
            decades below the largest coefficient.
        criterion: ``"aicc"`` or ``"bic"``.
        alpha: ridge penalty inside STLSQ.
        window, polyorder: Savitzky-Golay smoothing of the derivatives.
        variable_names: names of the ``d`` variables (default ``x0, x1, ...``).
    """
    ps = _ps()
    x, t = _check(x, t)
    d = x.shape[1]
    names = list(variable_names) if variable_names is not None else [f"x{i}" for i in range(d)]
    if len(names) != d:
        raise ShapeError(f"variable_names has {len(names)} names for {d} variables")
    xdot = smoothed_derivative(x, t, window, polyorder)
    # The smoothed endpoints are one-sided and noisier: drop half a window at each end.
    h = window // 2
    xs, ys = x[h:-h], xdot[h:-h]
    lib = _library(degree).fit(xs)
    theta = np.asarray(lib.transform(xs))
    if thresholds is None:
        lsq = np.linalg.lstsq(theta, ys, rcond=None)[0]
        top = float(np.abs(lsq).max())
        thresholds = np.logspace(-3, 0, 30) * top
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n = ys.size
    rows, best = [], None
    for thr in thresholds:
        coef = _regress(theta, ys, float(thr), alpha)
        k = int((coef != 0).sum())
        if k == 0:
            rows.append((thr, 0, float((ys**2).sum()), math.inf))
            continue
        rss = float(((theta @ coef.T - ys) ** 2).sum())
        score = _ic(rss, n, k, criterion)
        rows.append((thr, k, rss, score))
        if best is None or score < best[0]:
            best = (score, float(thr))
    if best is None:
        raise ConfigError(
            "every threshold removed every term; pass smaller thresholds, or check that the "
            "variables are not functions of each other (a singular library inflates the "
            "least-squares coefficients that set the default grid)")
    thr = best[1]
    model = ps.SINDy(optimizer=ps.STLSQ(threshold=thr, alpha=alpha, max_iter=50),
                     feature_library=_library(degree))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparsity parameter is too big")
        model.fit(xs, t=t[h:-h], x_dot=ys, feature_names=names)
    coef = np.asarray(model.coefficients())
    return SindyFit(coef, list(model.get_feature_names()), names, thr, degree,
                    np.asarray(rows), model)


@dataclass
class SindyEnsemble:
    """Bootstrap ensemble of SINDy regressions (:func:`ensemble_sindy`).

    Attributes:
        coefficients: ``(n_models, d, p)`` coefficients of every member.
        median: ``(d, p)`` median coefficients ("bragging").
        std: ``(d, p)`` standard deviation across members.
        inclusion: ``(d, p)`` fraction of members in which each term is active.
        feature_names, variable_names: as in :class:`SindyFit`.
    """

    coefficients: np.ndarray
    median: np.ndarray
    std: np.ndarray
    inclusion: np.ndarray
    feature_names: list[str]
    variable_names: list[str]

    def interval(self, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` percentile interval of each coefficient, ``((d, p), (d, p))``."""
        q = (1.0 - level) / 2.0
        return (np.quantile(self.coefficients, q, axis=0),
                np.quantile(self.coefficients, 1.0 - q, axis=0))


def ensemble_sindy(x: np.ndarray, t: np.ndarray | float, *, threshold: float,
                   seed: int | np.random.Generator, n_models: int = 50, degree: int = 2,
                   alpha: float = 1e-6, window: int = 11, polyorder: int = 3,
                   variable_names: list[str] | None = None) -> SindyEnsemble:
    """Bagging ensemble SINDy: STLSQ on bootstrap resamples of the (state, derivative) rows.

    Derivatives are computed once on the full series (resampling rows of a time series
    before differentiating would break the finite differences), then each member refits
    on ``n`` rows drawn with replacement.

    Args:
        x, t: data as in :func:`fit_sindy`.
        threshold: STLSQ threshold (e.g. ``fit_sindy(...).threshold``).
        seed: int or numpy Generator (required: nothing here uses global random state).
        n_models: ensemble size.
    """
    if n_models < 2:
        raise ConfigError(f"n_models must be >= 2, got {n_models}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x, t = _check(x, t)
    d = x.shape[1]
    names = list(variable_names) if variable_names is not None else [f"x{i}" for i in range(d)]
    xdot = smoothed_derivative(x, t, window, polyorder)
    h = window // 2
    xs, ys = x[h:-h], xdot[h:-h]
    lib = _library(degree).fit(xs)
    theta = np.asarray(lib.transform(xs))
    coefs = np.empty((n_models, d, theta.shape[1]))
    for i in range(n_models):
        idx = rng.integers(0, xs.shape[0], xs.shape[0])
        coefs[i] = _regress(theta[idx], ys[idx], threshold, alpha)
    feats = list(lib.get_feature_names(names))
    return SindyEnsemble(coefs, np.median(coefs, 0), coefs.std(0), (coefs != 0).mean(0),
                         feats, names)


def forecast_skill(fit: SindyFit, x: np.ndarray, t: np.ndarray | float, *,
                   tolerance: float = 0.5, window: int = 11, polyorder: int = 3
                   ) -> dict[str, float]:
    """Skill of a discovered model on held-out data ``x (n, d)`` at times ``t``.

    Returns:
        ``derivative_r2``: R^2 of the model's derivatives against the smoothed derivatives
        of the held-out data (1 is perfect); ``trajectory_nrmse``: RMS error of the model
        integrated from ``x[0]``, over the data's standard deviation (per variable, then
        averaged); ``valid_time``: the time until the normalised error first exceeds
        ``tolerance`` (the whole span when it never does).
    """
    x, t = _check(x, t)
    xdot = smoothed_derivative(x, t, window, polyorder)
    h = window // 2
    pred = fit.rhs(x[h:-h])
    res = ((pred - xdot[h:-h]) ** 2).sum()
    tot = ((xdot[h:-h] - xdot[h:-h].mean(0)) ** 2).sum()
    sim = fit.simulate(x[0], t)
    scale = x.std(0) + 1e-300
    err = np.sqrt((((sim - x) / scale) ** 2).mean(1))
    err = np.where(np.isfinite(err), err, np.inf)
    bad = np.nonzero(err > tolerance)[0]
    valid = float(t[bad[0]] - t[0]) if bad.size else float(t[-1] - t[0])
    finite = np.isfinite(err)
    nrmse = float(np.sqrt((err[finite] ** 2).mean())) if finite.all() else math.inf
    return {"derivative_r2": float(1.0 - res / tot), "trajectory_nrmse": nrmse,
            "valid_time": valid}
