"""Realistic phantom options: supersampling (partial volume), tissue texture, lesion kinds,
mixed anatomy, HU per tissue."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from msl_recon.data import tissues as T
from msl_recon.data.acquisition.presets import CLINICAL
from msl_recon.data.phantom import PhantomConfig, make_subject

CFG = CLINICAL.phantom_config()


@pytest.fixture(scope="module")
def clinical():
    cfg = dataclasses.replace(CFG, anatomy="mni", lesion_probability=0.0)
    # 96 px over 82.5 mm: the pixel size of a 256² slice over the default 220 mm FOV
    return make_subject(3, size=96, n_slices=3, fov_mm=82.5, config=cfg)


def _corr_at(res: np.ndarray, mask: np.ndarray, lag: int) -> float:
    """Normalised autocorrelation of ``res`` at a horizontal lag, over pixel pairs in ``mask``."""
    a, b = res[..., :-lag], res[..., lag:]
    m = mask[..., :-lag] & mask[..., lag:]
    a, b = a[m] - a[m].mean(), b[m] - b[m].mean()
    return float((a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean()))


def test_block_average_is_ground_truth(clinical) -> None:
    s = clinical
    assert s.fine["ct_hu"].shape == (3, 192, 192) and s.ct_hu.shape == (3, 96, 96)
    blk = s.fine["ct_hu"].reshape(3, 96, 2, 96, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(s.ct_hu, blk, rtol=1e-5, atol=1e-3)
    blk = s.fine["t1"].reshape(3, 96, 2, 96, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(s.mr["t1"], blk, atol=1e-6)
    assert s.spacing_mm[1] == pytest.approx(82.5 / 96)
    # partial volume: many pixels mix tissues of the fine grid
    edge = (s.fine["labels"].reshape(3, 96, 2, 96, 2).std(axis=(2, 4)) > 0).mean()
    assert edge > 0.05


def test_hu_per_tissue_in_literature_ranges() -> None:
    cfg = dataclasses.replace(CFG, anatomy="mni", lesion_probability=0.0)
    s = make_subject(3, size=64, n_slices=3, config=cfg)
    ranges = {
        T.GREY_MATTER: (35, 45),
        T.WHITE_MATTER: (25, 30),
        T.VENTRICLES: (5, 15),
        T.FAT: (-120, -60),
        T.CORTICAL_BONE: (1000, 2000),
        T.SINUS: (-1000, -800),
    }
    for lab, (lo, hi) in ranges.items():
        fine = s.fine["labels"] == lab
        assert fine.sum() > 20, T.TISSUES[lab].name
        med = float(np.median(s.fine["ct_hu"][fine]))
        assert lo <= med <= hi, (T.TISSUES[lab].name, med)


def test_texture_correlation_length_above_two_pixels(clinical) -> None:
    s = clinical
    lut = T.property_lut("hu")
    res = s.ct_hu - lut[s.labels]
    for lab in (T.WHITE_MATTER, T.GREY_MATTER):
        mask = ndimage_erode(s.labels == lab)
        # autocorrelation still above 1/e at a 2-pixel lag (pixels of a 256² slice):
        # correlation length > 2 px
        assert _corr_at(res, mask, 2) > np.exp(-1), T.TISSUES[lab].name
    assert float(res[mask].std()) > 1.5  # visible texture in the brain (HU)


def ndimage_erode(m: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.binary_erosion(m, structure=np.ones((1, 3, 3), bool))


def test_texture_varies_per_subject_and_tissue() -> None:
    cfg = dataclasses.replace(CFG, anatomy="procedural", lesion_probability=0.0)
    m1 = make_subject(1, size=32, n_slices=1, config=cfg).meta["texture"]
    m2 = make_subject(2, size=32, n_slices=1, config=cfg).meta["texture"]
    s1 = [v["corr_sigma_mm"] for v in m1.values()]
    s2 = [v["corr_sigma_mm"] for v in m2.values()]
    assert len(set(np.round(s1, 6))) == len(s1)  # per tissue
    assert not np.allclose(s1, s2)  # per subject
    assert min(s1 + s2) >= CFG.texture_corr_mm[0] and max(s1 + s2) <= CFG.texture_corr_mm[1]


@pytest.mark.parametrize("kind", ["hyper", "hypo", "rim"])
def test_lesion_kinds(kind: str) -> None:
    cfg = dataclasses.replace(
        CFG,
        anatomy="procedural",
        lesion_probability=1.0,
        lesion_kinds=(kind,),
        lesion_contrast=(1.0, 1.0),
        lesion_radius_mm=(12.0, 12.0),
        tissue_texture=False,
        ct_texture=0.0,
        supersample=1,
        pv_sigma_mm=0.0,
    )
    s = make_subject(7, size=96, n_slices=6, config=cfg)
    les = s.labels == T.LESION
    assert s.meta["lesion"]["kind"] == kind and les.sum() > 30
    hu = s.ct_hu[les]
    gm = T.tissue_by_name("grey_matter").hu
    if kind == "hyper":
        assert np.median(hu) > gm + 20
    elif kind == "hypo":
        assert np.median(hu) < T.tissue_by_name("white_matter").hu
    else:
        assert hu.max() > gm + 15 and hu.min() < 20  # enhancing rim and necrotic core


def test_mixed_anatomy_draws_both_families() -> None:
    cfg = dataclasses.replace(CFG, anatomy="mixed", supersample=1, tissue_texture=False)
    src = {make_subject(s, size=16, n_slices=1, config=cfg).meta["anatomy"] for s in range(8)}
    assert src == {"mni", "procedural"}


def test_default_config_unchanged() -> None:
    """The new options are off by default: no fine images, classic lesions."""
    cfg = PhantomConfig()
    assert cfg.supersample == 1 and not cfg.tissue_texture and cfg.lesion_kinds == ("classic",)
    s = make_subject(0, size=16, n_slices=1, config=dataclasses.replace(cfg, anatomy="procedural"))
    assert s.fine == {}


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        PhantomConfig(supersample=0)
    with pytest.raises(ValueError):
        PhantomConfig(lesion_kinds=("weird",))
    with pytest.raises(ValueError):
        PhantomConfig(anatomy="other")


def test_gradient_echo_signal() -> None:
    from msl_recon.data.phantom import gradient_echo, spin_echo

    # 90° with long TR and TE -> 0 is the PD; the Ernst angle maximises the signal
    assert gradient_echo(0.8, 1000.0, 50.0, 1e6, 0.0, 90.0) == pytest.approx(0.8)
    tr, t1 = 20.0, 1000.0
    ernst = np.rad2deg(np.arccos(np.exp(-tr / t1)))
    flips = np.linspace(1, 60, 200)
    sig = gradient_echo(1.0, t1, 50.0, tr, 5.0, flips)
    assert flips[np.argmax(sig)] == pytest.approx(ernst, abs=0.5)
    # T1 weighting: at short TR white matter (short T1) is brighter than grey matter
    wm, gm = T.tissue_by_name("white_matter"), T.tissue_by_name("grey_matter")
    s_wm = gradient_echo(wm.pd, wm.t1_ms, 0.6 * wm.t2_ms, 20.0, 4.0, 25.0)
    s_gm = gradient_echo(gm.pd, gm.t1_ms, 0.6 * gm.t2_ms, 20.0, 4.0, 25.0)
    assert s_wm > s_gm
    assert spin_echo(1.0, 1.0, 1e9, 1e9, 0.0) == pytest.approx(1.0)
