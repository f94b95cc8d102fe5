"""Figure of one simulated ``clinical`` subject slice: what the networks see and what they learn.

Panels: the CT ground truth in the paper window [−1000, 2125] HU and in the brain window
[0, 80] HU; the sparse-view FBP of the noisy, no-crime sinogram (brain window) and its error
against the ground truth; the MR magnitude target; magnitude and phase of three coil images;
the k-space noise seen in the image domain (zero-filled adjoint of the noise of one coil); the
zero-filled RSS and the SENSE-combined (estimated maps) inputs. Every panel has a colour bar.

Usage::

    python -m msl_recon.data.acquisition.figure docs/figures/clinical_subject.png
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["render_clinical_figure", "simulate_clinical_slice"]


def simulate_clinical_slice(
    seed: int = 9, *, size: int = 256, n_views: int = 64, acceleration: float = 4.0
) -> dict[str, Any]:
    """Simulate one slice of a ``clinical`` subject (the slice with the most lesion, else the
    middle one). Returns a dict of numpy arrays and numbers used by the figure."""
    import geometries as geo
    from operators import FBP

    from ..intensity import hu_to_unit, unit_to_hu
    from ..phantom import make_subject
    from . import coils, ct, mri
    from .presets import CLINICAL as P

    n_sl = 6
    subj = make_subject(seed, size=size, n_slices=n_sl, config=P.phantom_config())
    les = subj.meta["lesion"].get("slices", [])
    z = max(les, key=lambda k: int((subj.labels[k] == 10).sum())) if les else n_sl // 2
    f = P.supersample
    gen = torch.Generator().manual_seed(seed)

    # CT: fine image in [0, 1] units -> noisy sinogram of the reconstruction geometry -> FBP
    g = geo.preset("msl-paper", image_size=size, n_views=n_views)
    fine_u = torch.from_numpy(np.asarray(hu_to_unit(subj.fine["ct_hu"][z : z + 1])))
    sino = ct.simulate_ct_sinogram(fine_u, g, P.dose(), gen)
    sino_clean = ct.simulate_ct_sinogram(fine_u, g, None)
    fbp = FBP(g, filter="hann")
    ct_fbp = unit_to_hu(fbp(sino)[0].numpy())
    ct_fbp_clean = unit_to_hu(fbp(sino_clean)[0].numpy())
    gt_hu = unit_to_hu(ct.block_average(fine_u)[0].numpy())

    # MRI: T1 magnitude, random phase, 12 loop coils, correlated noise, Cartesian mask
    mag_f = torch.from_numpy(subj.fine["t1"][z : z + 1])
    n_f = size * f
    maps_f = coils.loop_coil_maps((n_f, n_f), P.n_coils, fov_mm=subj.meta["fov_mm"], seed=seed)
    phase = mri.random_phase((n_f, n_f), gen, poly_rad=P.phase_poly_rad, n_bumps=P.phase_bumps)
    psi = mri.coil_noise_covariance(P.n_coils, P.coil_noise_correlation, gen)
    mask = geo.CartesianMask(shape=(size, size), acceleration=acceleration, center_fraction=0.1)
    kw = {"maps_fine": maps_f, "phase_fine": phase, "covariance": psi}
    k = mri.simulate_mri_kspace(mag_f, mask, generator=gen, snr=P.mr_snr, **kw)
    k_clean = mri.simulate_mri_kspace(mag_f, mask, generator=gen, **kw)
    full = mri.simulate_mri_kspace(mag_f, np.ones((size, size), bool), generator=gen, **kw)
    cw = min(P.calib_width, coils.acs_width(mask))
    est = coils.estimate_coil_maps(k, cw, method=P.coil_estimation)
    coil_imgs = coils.coil_pinv(full)[0].numpy()
    noise_img = coils.coil_pinv(k - k_clean)[0, 0].numpy()
    return {
        "z": z,
        "lesion": subj.meta["lesion"],
        "anatomy": subj.meta["anatomy"],
        "ct_gt": gt_hu,
        "ct_fbp": ct_fbp,
        "ct_fbp_clean": ct_fbp_clean,
        "mr_gt": ct.block_average(mag_f)[0].numpy(),
        "coil_imgs": coil_imgs,
        "noise_img": noise_img,
        "zero_filled_rss": coils.rss_adjoint(k)[0].numpy(),
        "sense": coils.sense_combine_adjoint(k, None, est)[0].abs().numpy(),
        "calib_width": cw,
        "n_views": n_views,
        "acceleration": acceleration,
    }


def render_clinical_figure(path: str | Path, seed: int = 9, *, size: int = 256) -> Path:
    """Render the figure of :func:`simulate_clinical_slice` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .presets import CLINICAL as P

    d = simulate_clinical_slice(seed, size=size)
    fig, axes = plt.subplots(3, 5, figsize=(20, 12.5))
    brain = (0.0, 80.0)

    def show(ax: Any, img: np.ndarray, title: str, win: tuple[float, float], cmap: str = "gray"):
        im = ax.imshow(img, cmap=cmap, vmin=win[0], vmax=win[1])
        ax.set_title(title, fontsize=10)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)

    show(axes[0, 0], d["ct_gt"], "CT ground truth, paper window [HU]", (-1000.0, 2125.0))
    show(axes[0, 1], d["ct_gt"], "CT ground truth, brain window [HU]", brain)
    show(axes[0, 2], d["ct_fbp"], f"FBP, {d['n_views']} views, routine dose [HU]", brain)
    show(
        axes[0, 3],
        d["ct_fbp"] - d["ct_gt"],
        "FBP − ground truth [HU]",
        (-60.0, 60.0),
        "RdBu_r",
    )
    show(
        axes[0, 4],
        d["ct_fbp"] - d["ct_fbp_clean"],
        "CT noise: FBP(noisy) − FBP(noise-free) [HU]",
        (-30.0, 30.0),
        "RdBu_r",
    )
    mr_max = float(np.percentile(d["mr_gt"], 99.5))
    show(axes[1, 0], d["mr_gt"], "MR T1w target (magnitude, a.u.)", (0.0, mr_max))
    c_pick = (0, P.n_coils // 3, 2 * P.n_coils // 3)
    cmax = float(np.abs(d["coil_imgs"]).max())
    for j, c in enumerate(c_pick):
        show(axes[1, 1 + j], np.abs(d["coil_imgs"][c]), f"coil {c + 1} magnitude", (0.0, cmax))
        head = np.abs(d["coil_imgs"][c]) > 0.05 * cmax
        show(
            axes[2, 1 + j],
            np.where(head, np.angle(d["coil_imgs"][c]), np.nan),
            f"coil {c + 1} phase [rad]",
            (-np.pi, np.pi),
            "twilight",
        )
    nz = float(np.abs(d["noise_img"]).std()) * 3
    show(axes[1, 4], np.abs(d["noise_img"]), "coil 1 noise, zero-filled |n| (a.u.)", (0.0, nz))
    show(
        axes[2, 0],
        d["zero_filled_rss"],
        f"zero-filled RSS, R = {d['acceleration']:g}",
        (0.0, mr_max),
    )
    show(
        axes[2, 4],
        d["sense"],
        f"SENSE-combined, estimated maps (ACS {d['calib_width']})",
        (0.0, mr_max),
    )
    les = d["lesion"]
    kind = les.get("kind", "none") if les.get("present") else "none"
    fig.suptitle(
        f"clinical preset, subject seed {seed} ({d['anatomy']} anatomy, lesion: {kind}), "
        f"slice {d['z']}, {size}² from a {P.supersample * size}² phantom; "
        f"{P.n_coils} coils, SNR {P.mr_snr:g}",
        fontsize=13,
    )
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


if __name__ == "__main__":  # pragma: no cover
    render_clinical_figure(sys.argv[1] if len(sys.argv) > 1 else "clinical_subject.png")
