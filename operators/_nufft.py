"""NUFFT numerics (private): Kaiser–Bessel gridding plans shared by :class:`operators.NUFFT`.

Numerics → autograd → public operators, as in torchkbnufft: a :class:`NUFFTPlan` holds, per
trajectory, image and grid shape and kernel width, the torchkbnufft modules ('table') or the
complex CSR interpolation matrices ('sparse'), the Pipe–Menon density weights and the Toeplitz
filter, and applies the unnormalised NUFFT and its exact transpose to raw tensors. Plans are kept
in a small LRU cache, so operators rebuilt for every batch are cheap.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

from geometries import RadialTrajectory

__all__ = ["NUFFTPlan", "complex_dtype", "ramp_weights", "real_dtype"]


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype in (torch.float64, torch.complex128):
        return torch.complex128
    return torch.complex64


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


# Kaiser-Bessel table resolution of the 'table' path. torchkbnufft's default (2**10) interpolates
# the table linearly with ~7e-4 relative error against the exact non-uniform DFT; 2**14 gives ~5e-5
# at the same speed (the table has only table_oversamp * kernel_width entries per axis).
_TABLE_OVERSAMP = 2**14
_SPARSE_MAX_NNZ = 8_000_000  # 'auto': sparse gridding up to this many non-zeros (256 MB c64)
_PLANS: OrderedDict[tuple, NUFFTPlan] = OrderedDict()
_MAX_PLANS = 4  # each may hold sparse matrices of a few hundred MB


def _tkbn() -> Any:
    with warnings.catch_warnings():  # torchkbnufft uses torch.jit.script (deprecated in 2.x)
        warnings.simplefilter("ignore", DeprecationWarning)
        import torchkbnufft

    return torchkbnufft


def ramp_weights(traj: RadialTrajectory) -> np.ndarray:
    """Analytic area weights (rad²) of a radial trajectory: |k| Δk Δθ, centre disc for k = 0."""
    dk = 2 * math.pi / traj.n_samples
    r = np.abs(np.arange(traj.n_samples) - traj.n_samples / 2) * dk
    w = r * dk * (math.pi / traj.n_spokes)
    w[r == 0] = math.pi * (dk / 2) ** 2 / traj.n_spokes
    return np.tile(w, traj.n_spokes)


def _csr(
    rows: torch.Tensor,
    cols: torch.Tensor,
    vals: torch.Tensor,
    shape: tuple[int, int],
    device: torch.device | str,
) -> torch.Tensor:
    order = torch.argsort(rows, stable=True)
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64)
    crow[1:] = torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(crow, cols[order], vals[order], shape).to(device)


class NUFFTPlan:
    """Precomputations shared by every NUFFT with the same trajectory, shapes and kernel.

    Holds, lazily and per device/dtype, the torchkbnufft modules ('table') or the complex CSR
    interpolation matrices ``M`` (P × K) and ``M^H`` ('sparse'), the Pipe DCF and the Toeplitz
    filter. Plans are kept in a small LRU cache, so operators rebuilt for every batch are cheap.
    """

    def __init__(
        self,
        ktraj: torch.Tensor,
        shape: tuple[int, int],
        grid: tuple[int, int],
        width: int,
        interp: str,
    ) -> None:
        self.ktraj, self.shape, self.grid = ktraj, shape, grid
        self.width, self.interp = width, interp
        self.states: dict[tuple[torch.device, torch.dtype], dict[str, Any]] = {}
        self.pipe: torch.Tensor | None = None
        self.toeplitz: torch.Tensor | None = None

    @classmethod
    def get(cls, ktraj: np.ndarray, *args: Any) -> NUFFTPlan:
        """The cached plan for ``(ktraj, shape, grid, width, interp)``."""
        key = (hashlib.sha1(np.ascontiguousarray(ktraj).tobytes()).hexdigest(), ktraj.shape, *args)
        plan = _PLANS.get(key)
        if plan is None:
            plan = cls(torch.from_numpy(ktraj), *args)
            _PLANS[key] = plan
            while len(_PLANS) > _MAX_PLANS:
                _PLANS.popitem(last=False)
        _PLANS.move_to_end(key)
        return plan

    def kb_kwargs(self, table_oversamp: int = _TABLE_OVERSAMP) -> dict[str, Any]:
        kw = {"im_size": self.shape, "grid_size": self.grid, "numpoints": self.width}
        return {**kw, "table_oversamp": table_oversamp}

    def state(self, device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
        key = (device, real_dtype(dtype))
        st = self.states.get(key)
        if st is None:
            tkbn, rdt = _tkbn(), key[1]
            fw = tkbn.KbNufft(**self.kb_kwargs(), dtype=rdt, device=device)
            st = {"coef": fw.scaling_coef, "omega": self.ktraj.to(device=device, dtype=rdt)}
            if self.interp == "table":
                st["fw"], st["ad"] = (
                    fw,
                    tkbn.KbNufftAdjoint(**self.kb_kwargs(), dtype=rdt, device=device),
                )
            else:
                st["M"], st["MH"] = self.sparse_matrices(self.ktraj, complex_dtype(rdt), device)
            self.states[key] = st
        return st

    def sparse_matrices(
        self, ktraj: torch.Tensor, cdt: torch.dtype, device: torch.device | str = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Complex CSR gridding matrices ``M`` (P × K, exact Kaiser–Bessel values) and ``M^H``."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # sparse invariant checks
            re, im = _tkbn().calc_tensor_spmatrix(ktraj.to(torch.float64), **self.kb_kwargs())
        # real and imaginary parts share one (uncoalesced, duplicate-free) index list
        i, (p, k) = re._indices(), re.shape
        v = torch.complex(re._values(), im._values()).to(cdt)
        return _csr(i[0], i[1], v, (p, k), device), _csr(i[1], i[0], v.conj(), (k, p), device)

    # ------------------------------------------------------------- forward / adjoint
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, H, W) complex -> (B, P) unnormalised NUFFT (torchkbnufft convention)."""
        st = self.state(x.device, x.dtype)
        if self.interp == "table":
            return st["fw"](x.unsqueeze(1).contiguous(), st["omega"])[:, 0]
        (h, w), (k1, k2) = self.shape, self.grid
        g = torch.fft.fft2(torch.nn.functional.pad(x * st["coef"], (0, k2 - w, 0, k1 - h)))
        return (st["M"] @ g.reshape(-1, k1 * k2).T.contiguous()).T

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """y (B, P) complex -> (B, H, W), the exact transpose of :meth:`forward`."""
        st = self.state(y.device, y.dtype)
        if self.interp == "table":
            return st["ad"](y.unsqueeze(1).contiguous(), st["omega"])[:, 0]
        (h, w), (k1, k2) = self.shape, self.grid
        g = (st["MH"] @ y.T.contiguous()).T.reshape(-1, k1, k2)
        return torch.fft.ifft2(g, norm="forward")[..., :h, :w] * st["coef"].conj()

    # ------------------------------------------------------------- DCF and Toeplitz
    def pipe_weights(self, n_iter: int = 10) -> torch.Tensor:
        """Pipe–Menon density weights converted to areas (rad²), float64 (P,), CPU."""
        if self.pipe is None:
            if self.interp == "sparse":
                m, mh = self.sparse_matrices(self.ktraj, torch.complex128)
                d = torch.ones(self.ktraj.shape[1], dtype=torch.complex128)
                for _ in range(n_iter):  # d <- d / |C d| with C = M M^H the gridding kernel
                    d = d / torch.abs(m @ (mh @ d))
            else:  # low memory: torchkbnufft's table version of the same iteration
                d = (
                    _tkbn()
                    .calc_density_compensation_function(
                        self.ktraj, num_iterations=n_iter, **self.kb_kwargs(2**10)
                    )
                    .reshape(-1)
                )
            # the same fixed point on a full Cartesian grid, where the area per sample is
            # 4π²/(HW), is the constant 1/v (shift invariance): compute v on a patch of the grid
            axes = []
            for n in self.shape:
                j = (
                    np.arange(n) - n // 2
                    if n <= 4 * self.width + 1
                    else np.arange(-2 * self.width, 2 * self.width + 1)
                )
                axes.append(torch.from_numpy(j * (2 * math.pi / n)))
            cart = torch.stack(torch.meshgrid(*axes, indexing="ij")).reshape(2, -1)
            mc, mhc = self.sparse_matrices(cart, torch.complex128)
            centre = int(torch.argmin(cart.abs().sum(0)))
            v = float((mc @ (mhc @ torch.ones(cart.shape[1], dtype=torch.complex128)))[centre].real)
            self.pipe = d.real * v * (4 * math.pi**2 / (self.shape[0] * self.shape[1]))
        return self.pipe

    def toeplitz_filter(self) -> torch.Tensor:
        """Real FFT filter (2H, 2W), float64, with ``crop(ifft2(D·fft2(pad x))) = A^H A x``."""
        if self.toeplitz is None:
            (h, w), k = self.shape, self.ktraj
            # t(d) = (1/HW) Σ_p exp(i k_p·d) for d in [-N, N): four adjoints of modulated ones
            sr, sc = (h // 2 - h, h // 2), (w // 2 - w, w // 2)
            combos = [(a, b) for a in sr for b in sc]
            u = torch.stack([torch.exp(1j * (k[0] * a + k[1] * b)) for a, b in combos])
            t = self.adjoint(u.to(torch.complex128)) / (h * w)
            emb = torch.zeros(2 * h, 2 * w, dtype=torch.complex128)
            for q, (a, b) in enumerate(combos):
                dr = torch.arange(h) - h // 2 + a
                dc = torch.arange(w) - w // 2 + b
                emb[(dr % (2 * h))[:, None], (dc % (2 * w))[None, :]] = t[q]
            emb[h, :] = 0  # d = -H and d = -W never occur; zero them to keep D real
            emb[:, w] = 0
            self.toeplitz = torch.fft.fft2(emb).real
        return self.toeplitz
