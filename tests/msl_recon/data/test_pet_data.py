"""PET data physics: activity, HU → μ(511 keV), intensity scale, simulated prompts, FBP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import geometries as geo
import operators as ops
from geometries.pet import biograph_mct
from msl_recon.data import tissues as T
from msl_recon.data.pet import (
    CARNEY_BILINEAR,
    PET_REF_KBQ_ML,
    hu_to_mu511,
    pet_activity,
    pet_to_unit,
    unit_to_pet,
)
from msl_recon.data.pet_sim import pet_fbp, simulate_pet
from msl_recon.data.phantom import PhantomConfig, make_subject
from msl_recon.errors import InputError

N = 64


@pytest.fixture(scope="module")
def subject():
    return make_subject(3, size=N, n_slices=4, config=PhantomConfig(lesion_probability=1.0))


# ------------------------------------------------------------------ HU -> μ(511 keV)
def test_hu_to_mu511_reference_values() -> None:
    hu = np.array([-1000.0, -1100.0, 0.0, 47.0, 1000.0, 1600.0])
    mu = hu_to_mu511(hu)
    assert mu[0] == pytest.approx(0.0, abs=1e-12)  # air
    assert mu[1] == 0.0  # below air: clipped, never negative
    assert mu[2] == pytest.approx(0.0096, rel=1e-9)  # water 0.096 /cm
    # bone: Carney et al. 120 kVp slope 5.10e-5 /cm per HU above 47 HU, i.e. about half the
    # soft-tissue slope (bone attenuates less at 511 keV than its CT number suggests)
    assert mu[5] == pytest.approx((5.10e-5 * 2600 + 4.71e-2) / 10, rel=1e-9)
    assert 0.017 < mu[5] < 0.019  # cortical bone ≈ 0.17–0.19 /cm
    slope_bone = (mu[5] - mu[4]) / 600.0
    assert slope_bone == pytest.approx(5.10e-6, rel=1e-9)
    assert slope_bone < 9.6e-6 * 0.6
    # torch gives the same numbers, on float64 and float32
    t = hu_to_mu511(torch.from_numpy(hu))
    np.testing.assert_allclose(t.numpy(), mu, rtol=1e-12)
    assert hu_to_mu511(torch.zeros(3, dtype=torch.float32)).dtype == torch.float32
    with pytest.raises(InputError, match="kvp"):
        hu_to_mu511(hu, kvp=90)


@pytest.mark.parametrize("kvp", sorted(CARNEY_BILINEAR))
def test_hu_to_mu511_is_continuous_at_the_break_point(kvp: int) -> None:
    bp = CARNEY_BILINEAR[kvp][2]
    lo, hi = hu_to_mu511(np.array([bp - 1e-6, bp + 1e-6]), kvp=kvp)
    assert hi == pytest.approx(lo, rel=2e-3)  # the published table is rounded to 3 digits
    assert np.all(np.diff(hu_to_mu511(np.linspace(-1000, 3000, 401), kvp=kvp)) > 0)


# ------------------------------------------------------------------ activity
def test_activity_contrasts_follow_fdg(subject) -> None:
    act = pet_activity(subject, np.random.default_rng(0), lesion="hot")
    lab = subject.labels
    assert act.shape == lab.shape and act.dtype == np.float32
    mean = {k: float(act[lab == k].mean()) for k in np.unique(lab)}
    assert mean[T.GREY_MATTER] / mean[T.WHITE_MATTER] == pytest.approx(4.0, rel=0.1)
    assert 10.0 < mean[T.GREY_MATTER] < 35.0  # kBq/mL of a clinical FDG brain scan
    assert mean[T.CSF] < 0.02 * mean[T.GREY_MATTER]
    assert mean[T.VENTRICLES] == pytest.approx(mean[T.CSF], rel=0.1)
    assert mean[T.SCALP] < 0.6 * mean[T.WHITE_MATTER]
    assert np.all(act[lab == T.AIR] == 0.0) and np.all(act >= 0.0)
    assert mean[T.LESION] > 1.2 * mean[T.GREY_MATTER]  # hot tumour
    cold = pet_activity(subject, np.random.default_rng(0), lesion="cold")
    assert float(cold[lab == T.LESION].mean()) < mean[T.WHITE_MATTER]
    assert mean[T.EDEMA] < mean[T.WHITE_MATTER]


def test_activity_is_deterministic_and_varies_between_subjects(subject) -> None:
    a = pet_activity(subject, 5)
    np.testing.assert_array_equal(a, pet_activity(subject, np.random.default_rng(5)))
    b = pet_activity(subject, 6)
    assert not np.allclose(a, b)
    # the GM:WM ratio stays near 4 for every subject
    for seed in range(6):
        x = pet_activity(subject.labels[1], seed, texture=0.0)
        gm = x[subject.labels[1] == T.GREY_MATTER].mean()
        wm = x[subject.labels[1] == T.WHITE_MATTER].mean()
        assert 3.54 < gm / wm < 4.51
    with pytest.raises(InputError, match="integer"):
        pet_activity(np.zeros((4, 4), np.float32))


def test_unit_scale_round_trip() -> None:
    x = np.array([-1.0, 0.0, 5.0, 20.0, 40.0, 60.0], np.float32)
    u = pet_to_unit(x)
    np.testing.assert_allclose(u, [0.0, 0.0, 0.125, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(unit_to_pet(u[1:5]), x[1:5])
    t = pet_to_unit(torch.tensor([20.0], dtype=torch.float64))
    assert t.dtype == torch.float64 and float(t) == 20.0 / PET_REF_KBQ_ML


# ------------------------------------------------------------------ simulation
def test_simulated_prompts_are_poisson_with_the_expected_mean(torch_gen) -> None:
    g = biograph_mct(32, pixel_size=4.0, n_views=24)
    yy, xx = np.mgrid[-16:16, -16:16] + 0.5
    disk = ((xx / 12) ** 2 + (yy / 10) ** 2 <= 1).astype(np.float32)
    act = torch.from_numpy(10.0 * disk)
    mu = torch.from_numpy(0.0096 * disk)
    k = 40  # copies of the slice in one batch: independent draws of the same expectation
    draws = [
        simulate_pet(act.expand(k, 32, 32), mu.expand(k, 32, 32), g, counts=2e4,
                     generator=torch.Generator().manual_seed(s))["prompts"]
        for s in range(5)
    ]  # fmt: skip
    sim = simulate_pet(act, mu, g, counts=2e4, noise=False)
    lam = sim["expected"][0].double()
    y = torch.cat(draws).double()  # (200, V, D)
    assert torch.all(y == torch.round(y)) and torch.all(y >= 0)
    n = y.shape[0]
    mean, var = y.mean(0), y.var(0)
    sel = lam > 2.0
    # the mean over 200 draws: z-scores of all bins are standard normal
    z = ((mean - lam) / torch.sqrt(lam / n))[sel]
    assert abs(float(z.mean())) < 0.15 and float(z.std()) == pytest.approx(1.0, abs=0.1)
    # Poisson: variance equals the mean (averaged over bins, the sampling error is ~1 %)
    assert float((var[sel] / lam[sel]).mean()) == pytest.approx(1.0, abs=0.03)
    # bookkeeping: trues sum to the requested counts, background is 35 % of the prompts
    assert float(lam.sum()) == pytest.approx(2e4 / 0.65, rel=1e-6)
    assert float(sim["background"].sum() / sim["expected"].sum()) == pytest.approx(0.35, rel=1e-5)
    assert float(sim["scatter"].sum()) == pytest.approx(0.25 / 0.65 * 2e4, rel=1e-5)
    r = sim["randoms"][0]
    assert torch.all(r == r[0, 0])  # randoms flat over the LORs
    # scatter is smooth and extends beyond the head (where there are no trues)
    s = sim["scatter"][0].double()
    trues = lam - sim["background"][0].double()
    outside = trues.sum(0) == 0
    assert bool(outside.any()) and float(s[:, outside].sum()) > 0.02 * float(s.sum())
    assert float(s.diff(dim=-1).abs().max()) < 0.05 * float(s.max())
    # same generator state -> same prompts
    a = simulate_pet(act, mu, g, generator=torch.Generator().manual_seed(7))["prompts"]
    b = simulate_pet(act, mu, g, generator=torch.Generator().manual_seed(7))["prompts"]
    assert torch.equal(a, b)


def test_simulate_rejects_bad_input() -> None:
    g = biograph_mct(16, pixel_size=4.0, n_views=6)
    z = torch.zeros(16, 16)
    with pytest.raises(InputError, match="no activity"):
        simulate_pet(z, z, g)
    with pytest.raises(InputError, match="shape"):
        simulate_pet(torch.ones(15, 15), torch.zeros(15, 15), g)
    with pytest.raises(InputError, match="fraction"):
        simulate_pet(torch.ones(16, 16), z, g, scatter_fraction=0.7, randoms_fraction=0.4)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def test_corrected_fbp_recovers_the_activity(subject) -> None:
    g = geo.preset("pet-biograph-mct", image_size=N)
    act = torch.from_numpy(pet_activity(subject, 0)[1:3])
    mu = torch.from_numpy(hu_to_mu511(subject.ct_hu[1:3]))
    sim = simulate_pet(act, mu, g, noise=False)
    blurred = ops.GaussianBlur(4.5, g.pixel_size, (N, N))(act.double()).float()
    x = pet_fbp(sim["prompts"], sim["attenuation"], sim["background"], g, scale=sim["scale"],
                filter="ram-lak")  # fmt: skip
    hann = pet_fbp(sim["prompts"], sim["attenuation"], sim["background"], g, scale=sim["scale"])
    raw = pet_fbp(sim["prompts"], 1.0, 0.0, g, scale=sim["scale"], filter="ram-lak")
    # the analytic inverse reaches the resolution-limited activity (measured 0.083, Hann 0.156)
    assert _rel(x, blurred) < 0.11
    assert _rel(hann, blurred) < 0.2
    # without attenuation and background correction it is far off (measured 0.77)
    assert _rel(raw, blurred) > 0.6 and _rel(raw, blurred) > 5 * _rel(x, blurred)
    # quantitative: FBP keeps the total activity of each slice (measured within 0.15 %)
    torch.testing.assert_close(x.sum(dim=(1, 2)), act.sum(dim=(1, 2)), rtol=0.01, atol=0)
    torch.testing.assert_close(hann.sum(dim=(1, 2)), act.sum(dim=(1, 2)), rtol=0.01, atol=0)
    assert x.shape == (2, N, N) and x.dtype == torch.float32
