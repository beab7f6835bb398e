"""Co-registration: how far one image's content sits from a reference's, and its undoing.

One convention everywhere: :class:`Shift` ``(dy, dx)`` is the displacement of the *moving*
image's content relative to the reference, in grid pixels, ``+dy`` = down (south),
``+dx`` = right (east).  The matcher (Guizar-Sicairos et al. 2008, the algorithm of
scikit-image's ``phase_cross_correlation`` with ``normalization=None``, and with its result)
returns the opposite (the shift that registers the moving image); :func:`estimate_shift`
hides that.

The matcher is implemented here rather than called from scikit-image because scikit-image
works in complex128 on full spectra: at 2000 x 2000 px a :func:`register` cost ~2.5 s CPU
and ~380 MB of work arrays, the peak of a whole watch run.  This one works in float32 on
half spectra (``scipy.fft.rfft2``) and evaluates the upsampled refinement from the half
spectrum by Hermitian symmetry; it finds the same shifts (to ``1 / upsample`` where two
upsampled samples tie to float32 precision) and the same ``error``.

A shift is applied by :func:`sitewatch.imagery.grid.load_scene` as a change of the destination
transform while warping, so a scene is resampled once, never twice.

The global shift is checked on a grid of windows by :func:`register`, which rejects or flags
matches the windows do not confirm; the watch pipeline records every registration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy import fft

from sitewatch.errors import GridError


@dataclass(frozen=True)
class Shift:
    """Content displacement of a moving image relative to its reference, in grid pixels."""

    dy: float
    dx: float
    error: float = float("nan")  # normalised RMS error of the match, 0 = perfect (as skimage's)

    @property
    def magnitude(self) -> float:
        return float(np.hypot(self.dy, self.dx))

    def __neg__(self) -> Shift:
        return Shift(-self.dy, -self.dx, self.error)

    def __sub__(self, other: Shift) -> Shift:
        return Shift(self.dy - other.dy, self.dx - other.dx, self.error)


ZERO = Shift(0.0, 0.0, 0.0)

# Threads for the FFTs: two at most (a watch run already overlaps reading on the other core),
# and only for grids of 2 Mpx or more: below that a second thread gained no wall time on the
# benchmark (benchmarks/bench_coregister.py --speed) and cost 20-30% more CPU.
_WORKERS = max(1, min(2, os.cpu_count() or 1))
_THREADED_FFT_PX = 1 << 21


def _workers(shape: tuple[int, ...]) -> int:
    """FFT threads for an array of ``shape``."""
    return _WORKERS if int(np.prod(shape)) >= _THREADED_FFT_PX else 1


def _prepare(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill unobserved pixels with the median and taper the edges (Hann) against wrap-around.

    Returns a new float32 array; everything is done in place on it, so no float64 copy of
    the grid is ever made (the mean is accumulated in float64 through numpy's buffering).
    """
    x = np.array(a, dtype=np.float32)
    hole = ~valid
    if hole.any():  # the median (a partition of every observed pixel) only when needed
        np.copyto(x, np.median(x[valid], overwrite_input=True), where=hole)
    x -= np.float32(x.mean(dtype=np.float64))
    x *= np.hanning(x.shape[0]).astype(np.float32)[:, None]
    x *= np.hanning(x.shape[1]).astype(np.float32)[None, :]
    return x


def _spectrum(a: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, float]:
    """Half spectrum (``rfft2``, complex64) of the prepared image, and its energy.

    The energy is the sum of ``|F|^2`` over the *full* spectrum, which Parseval gives from
    the image itself: ``size * sum(x^2)`` (per-row float32 sums added in float64).
    """
    x = _prepare(a, valid)
    energy = x.size * float(np.einsum("ij,ij->i", x, x).sum(dtype=np.float64))
    return fft.rfft2(x, workers=_workers(x.shape)), energy


def _signed_freqs(n: int) -> np.ndarray:
    """FFT bin ``k`` as a signed frequency index, as :func:`numpy.fft.fftfreq` orders them
    (``0, 1, .., (n-1)//2, -(n//2), .., -1``; an even ``n``'s Nyquist bin is negative)."""
    k = np.arange(n)
    return np.where(k < (n + 1) // 2, k, k - n)


def _upsampled_cc(half: np.ndarray, shape: tuple[int, int], ys: np.ndarray,
                  xs: np.ndarray) -> np.ndarray:
    """Cross-correlation at real positions ``ys`` x ``xs`` (pixels) by matrix-multiply DFT.

    ``cc(y, x) = sum_{k,l} P[k,l] exp(2 pi i (y s_k / ny + x s_l / nx))`` over the full
    cross-power spectrum ``P`` with signed frequencies ``s`` (an even size's Nyquist bin
    negative): exactly what scikit-image's ``_upsampled_dft`` evaluates, but from the half
    spectrum ``half = P[:, :nx//2+1]``.  The columns that ``rfft2`` leaves out are
    ``P[k, nx-l] = conj(P[-k, l])``, so their sum over ``x`` is the conjugate of the
    positive columns' sum at row ``-k``: one complex64 product of the half spectrum with a
    ``(len(xs), nx/2)`` kernel, then a small one along ``y``.
    """
    ny, nx = shape
    m = (nx - 1) // 2  # positive frequencies 1..m, each paired with its negative
    kx = np.exp(2j * np.pi * np.outer(xs, np.arange(1, m + 1) / nx)).astype(np.complex64)
    pos = half[:, 1:m + 1] @ kx.T  # (ny, len(xs))
    d = pos + np.conj(pos[-np.arange(ny) % ny])
    d += half[:, :1]  # DC column
    if nx % 2 == 0:  # Nyquist column, frequency -nx/2 as fftfreq has it
        d += half[:, nx // 2:nx // 2 + 1] * np.exp(-1j * np.pi * xs).astype(np.complex64)
    ky = np.exp(2j * np.pi * np.outer(ys, _signed_freqs(ny) / ny)).astype(np.complex64)
    # The small product without BLAS: OpenBLAS threads a (30, ny) x (ny, 30) product, and
    # with the other core busy (another process, a read) waking its thread cost 70 ms here.
    return np.einsum("ak,bk->ab", ky, np.ascontiguousarray(d.T))


def _phase_cross_correlation(
    reference: np.ndarray, moving: np.ndarray, valid: np.ndarray, upsample: int,
) -> tuple[float, float, float]:
    """Guizar-Sicairos et al. (2008) sub-pixel registration, as scikit-image's
    ``phase_cross_correlation(..., upsample_factor=upsample, normalization=None)`` computes
    it on the images prepared with ``valid`` (:func:`_prepare`), and with its sign: returns
    ``(dy, dx, error)`` where ``(dy, dx)`` is the shift that *registers* ``moving`` onto
    ``reference`` (the opposite of the content's displacement).

    Steps as there: cross-power spectrum ``F conj(G)``, inverse FFT, integer peak of ``|cc|``
    (indices past the midpoint wrap to negative shifts), then ``|cc|`` upsampled
    ``upsample`` times by matrix DFT on a ``ceil(1.5 upsample)``-sample region centred
    (``dftshift``) on that peak; ``error = sqrt(|1 - |CCmax|^2 / (E_ref E_mov)|)``.  Done
    in float32 / complex64 on half spectra (``rfft2``), so the largest arrays are one
    image-sized float32 and two half-spectra.
    """
    shape = (int(reference.shape[0]), int(reference.shape[1]))
    spec, e_ref = _spectrum(reference, valid)
    g, e_mov = _spectrum(moving, valid)
    np.conjugate(g, out=g)
    spec *= g  # the cross-power spectrum, in place
    del g
    cc = fft.irfft2(spec, s=shape, workers=_workers(shape))  # real: P is Hermitian
    np.abs(cc, out=cc)
    peak = np.unravel_index(int(np.argmax(cc)), shape)
    shift = np.array([p - n if p > n // 2 else p for p, n in zip(peak, shape, strict=True)],
                     dtype=float)
    if upsample == 1:
        cc_max = float(cc[peak]) * cc.size  # irfft2 divides by the size; the sum does not
    else:
        del cc
        region = int(np.ceil(upsample * 1.5))
        centre = region // 2  # scikit-image's dftshift
        offsets = (np.arange(region) - centre) / upsample
        up = _upsampled_cc(spec, shape, shift[0] + offsets, shift[1] + offsets)
        amp = np.abs(up)
        best = np.unravel_index(int(np.argmax(amp)), amp.shape)
        cc_max = float(amp[best])
        shift += (np.array(best, dtype=float) - centre) / upsample
    shift[np.array(shape) == 1] = 0.0  # a single row or column says nothing along it
    amp2 = e_ref * e_mov
    if amp2 == 0:  # a flat image (after the median fill): no match to measure
        return float(shift[0]), float(shift[1]), float("nan")
    error = float(np.sqrt(abs(1.0 - cc_max * cc_max / amp2)))
    return float(shift[0]), float(shift[1]), error


def estimate_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    upsample: int = 20,
    min_valid: float = 0.3,
) -> Shift:
    """Sub-pixel content shift of ``moving`` relative to ``reference`` (2-D, NaN = unobserved).

    Cross-correlation (Guizar-Sicairos et al. 2008, unnormalised, as scikit-image's
    ``phase_cross_correlation``), upsampled ``upsample`` times for sub-pixel precision.
    Pixels unobserved on either image are filled with each image's median and the edges
    tapered before matching.  Raises :class:`GridError` when either image is less than
    ``min_valid`` observed, or ``upsample`` is below 1.
    """
    if reference.shape != moving.shape or reference.ndim != 2:
        raise GridError(f"cannot co-register images of shapes {reference.shape}, {moving.shape}")
    if upsample < 1:
        raise GridError(f"upsample must be a whole number >= 1, got {upsample!r}")
    both = np.isfinite(reference)
    both &= np.isfinite(moving)
    seen = float(both.mean())
    if seen < min_valid or not both.any():
        raise GridError(f"only {seen:.0%} of the pixels observed on both images; "
                        f"co-registration needs {min_valid:.0%}")
    dy, dx, error = _phase_cross_correlation(reference, moving, both, int(upsample))
    # That is the shift that registers `moving` onto `reference`: the content's is opposite.
    return Shift(-dy, -dx, error)


@dataclass(frozen=True)
class LocalShift:
    """The shift measured in one window of a registration check (window centre in pixels)."""

    row: float
    col: float
    shift: Shift | None  # None where the window had too little observed or textured data

    @property
    def reliability(self) -> float:
        return _reliability(self.shift)


@dataclass(frozen=True)
class Registration:
    """A scene's co-registration to its reference, with how far to trust it.

    ``status`` is ``ok``, ``flagged`` (usable, but the local windows disagree more than they
    should: rotation, warp or changed ground) or ``rejected`` (do not compare this scene
    without a closer look: the windows disagree badly, or the match is unreliable and too
    few windows match confidently to confirm it).
    """

    shift: Shift
    reliability: float  # 1 - the normalised RMS error of the global match (Shift.error), 0..1
    residual_px: float  # RMS of (local - global) over usable windows; NaN if fewer than 3
    local: tuple[LocalShift, ...]
    status: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "dy": self.shift.dy, "dx": self.shift.dx, "reliability": self.reliability,
            "residual_px": None if np.isnan(self.residual_px) else self.residual_px,
            "status": self.status, "reason": self.reason,
            "local": [{"row": w.row, "col": w.col,
                       "dy": w.shift.dy if w.shift else None,
                       "dx": w.shift.dx if w.shift else None} for w in self.local],
        }


def _reliability(shift: Shift | None) -> float:
    if shift is None or np.isnan(shift.error):
        return 0.0
    return float(np.clip(1.0 - shift.error, 0.0, 1.0))


def register(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    windows: int = 3,
    min_reliability: float = 0.3,
    flag_residual_px: float = 0.5,
    reject_residual_px: float = 1.5,
    upsample: int = 20,
) -> Registration:
    """Co-register ``moving`` to ``reference`` and check the result locally.

    The global shift comes from :func:`estimate_shift` over the whole image; the same
    estimate on a ``windows`` x ``windows`` grid of tiles shows whether one translation
    explains the whole scene.  A rotation or warp makes the local shifts drift across the
    image; a bad match makes them scatter.  Raises :class:`GridError` when the images share
    too few observed pixels for any estimate.
    """
    glob = estimate_shift(reference, moving, upsample=upsample)
    rel = _reliability(glob)
    h, w = reference.shape
    local: list[LocalShift] = []
    if windows > 1 and min(h, w) // windows >= 24:
        ys = np.linspace(0, h, windows + 1).astype(int)
        xs = np.linspace(0, w, windows + 1).astype(int)
        for i in range(windows):
            for j in range(windows):
                r = reference[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
                m = moving[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]
                try:
                    s = estimate_shift(r, m, upsample=upsample, min_valid=0.5)
                except GridError:
                    s = None
                if s is not None and _reliability(s) < min_reliability:
                    s = None  # flat or changed ground: no evidence either way
                local.append(LocalShift((ys[i] + ys[i + 1]) / 2, (xs[j] + xs[j + 1]) / 2, s))
    usable = [lw.shift for lw in local if lw.shift is not None]
    residual = (float(np.sqrt(np.mean([(s - glob).magnitude ** 2 for s in usable])))
                if len(usable) >= 3 else float("nan"))
    if rel < min_reliability and np.isnan(residual):
        # A low global score alone also comes from real change between dates (OSCD's urban
        # pairs score 0.07-0.3 yet their windows agree to 0.1-0.2 px); it rejects only
        # when too few windows match confidently to confirm the shift.
        status, reason = "rejected", (f"unreliable match (reliability {rel:.2f}) that the "
                                      "local windows cannot confirm")
    elif not np.isnan(residual) and residual > reject_residual_px:
        status, reason = "rejected", (f"local shifts disagree by {residual:.2f} px RMS "
                                      "(rotation, warp or a wrong match)")
    elif not np.isnan(residual) and residual > flag_residual_px:
        status, reason = "flagged", f"local shifts disagree by {residual:.2f} px RMS"
    else:
        status = "ok"
        reason = ("global and local shifts agree" if not np.isnan(residual)
                  else "global shift only (too few textured windows to check locally)")
    return Registration(glob, rel, residual, tuple(local), status, reason)

__all__ = ["ZERO", "LocalShift", "Registration", "Shift", "estimate_shift", "register"]
