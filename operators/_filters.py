"""Ramp filters for filtered back-projection (numpy, geometry independent).

The ramp is the discrete spatial-domain Ram-Lak kernel (Kak & Slaney, eq. 3.61 / 3.64) sampled
at the detector spacing Δs::

    h[0] = 1 / (4 Δs²),   h[n odd] = -1 / (π² n² Δs²),   h[n even, n ≠ 0] = 0

Its discrete Fourier transform is the band-limited ramp with the correct DC value, which makes
FBP far more accurate (no DC offset, no cupping) than a sampled ``|ω|``. The kernel is laid out on
a zero-padded circular grid of length ``P ≥ 2 D - 1`` so that the circular convolution equals the
linear one on the ``D`` detector bins. Apodisation windows multiply its spectrum as in ODL and
scikit-image, with ``frequency_scaling`` the fraction of the Nyquist band that is kept.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FILTERS", "check_filter", "padded_length", "ramp_response"]

FILTERS = ("ram-lak", "shepp-logan", "cosine", "hann")


def check_filter(name: str, frequency_scaling: float) -> str:
    """Validate and normalise a filter name (case-insensitive, ``_`` or ``-``)."""
    if not isinstance(name, str):
        raise ValueError(f"filter must be a string, one of {FILTERS}; got {name!r}")
    key = name.strip().lower().replace("_", "-")
    if key == "ramlak":
        key = "ram-lak"
    if key not in FILTERS:
        raise ValueError(f"unknown filter {name!r}; choose one of {FILTERS}")
    try:
        fs = float(frequency_scaling)
    except (TypeError, ValueError):
        raise ValueError(
            f"frequency_scaling must be a number in (0, 1], got {frequency_scaling!r}"
        ) from None
    if not (0.0 < fs <= 1.0):
        raise ValueError(f"frequency_scaling must lie in (0, 1], got {frequency_scaling!r}")
    return key


def padded_length(det_count: int) -> int:
    """FFT length used for ``det_count`` bins: the smallest even ``2^a 3^b 5^c ≥ 2 D - 1``."""
    need = max(2 * det_count - 1, 2)
    best = None
    p2 = 2
    while p2 < 2 * need:
        p3 = p2
        while p3 < 2 * need:
            p5 = p3
            while p5 < 2 * need:
                if p5 >= need and (best is None or p5 < best):
                    best = p5
                p5 *= 5
            p3 *= 3
        p2 *= 2
    assert best is not None
    return best


def ramp_response(
    det_count: int,
    spacing: float,
    filter: str = "ram-lak",
    frequency_scaling: float = 1.0,
    footprint: float = 0.0,
) -> np.ndarray:
    """Real ``rfft`` response of the windowed ramp on the padded grid.

    Parameters
    ----------
    det_count : int
        Number of detector bins D.
    spacing : float
        Detector sample spacing Δs (mm) in the coordinate in which FBP filters (for fan beam, the
        detector rescaled to the isocentre).
    filter : str
        ``"ram-lak"``, ``"shepp-logan"``, ``"cosine"`` or ``"hann"``.
    frequency_scaling : float
        Fraction of the Nyquist band kept, in (0, 1]; the window is stretched to that band and the
        response is zero above it.
    footprint : float
        Width in mm (same coordinate as ``spacing``) of a box average applied to the filtered
        projections, i.e. the response is multiplied by ``sinc(ν · footprint)`` (ν in cycles/mm).
        0 (default) leaves the ramp unchanged.

    Returns
    -------
    numpy.ndarray
        ``(P // 2 + 1,)`` float64, ``P = padded_length(D)``. Applying
        ``irfft(rfft(p, n=P) * H, n=P)[..., :D] * Δs`` is the discrete convolution
        ``Δs Σ_n h[n] p[k - n]`` (the ``Δs`` of the quadrature is included in ``H``).
    """
    key = check_filter(filter, frequency_scaling)
    fs = float(frequency_scaling)
    n_pad = padded_length(det_count)
    idx = np.arange(n_pad)
    dist = np.minimum(idx, n_pad - idx)  # circular distance
    kernel = np.zeros(n_pad, dtype=np.float64)
    kernel[0] = 0.25
    odd = dist % 2 == 1
    kernel[odd] = -1.0 / (math.pi**2 * dist[odd].astype(np.float64) ** 2)
    # kernel in units of 1/Δs²; the convolution quadrature multiplies by Δs -> overall 1/Δs
    resp = np.fft.rfft(kernel).real / spacing
    r = np.fft.rfftfreq(n_pad) / 0.5  # normalised frequency, 1 = Nyquist
    x = r / fs
    if key == "ram-lak":
        win = np.ones_like(r)
    elif key == "shepp-logan":
        win = np.sinc(x / 2.0)
    elif key == "cosine":
        win = np.cos(x * math.pi / 2.0)
    else:  # hann
        win = np.cos(x * math.pi / 2.0) ** 2
    win = np.where(r <= fs, win, 0.0)
    if footprint > 0:
        win = win * np.sinc(np.fft.rfftfreq(n_pad) / spacing * footprint)
    return resp * win
