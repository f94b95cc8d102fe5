"""The benchmark protocol: suites, scoreboards with subject CIs, budgets, presets, findings."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from benchmarks.acquisition import get_preset, simulation_spec
from benchmarks.budget import budget_fit, tune_lr
from benchmarks.evaluate import Scoreboard
from benchmarks.learned import _BatchOperator
from benchmarks.report import _findings
from benchmarks.suites import SUITES, get_suite


def test_quick_suite_follows_the_protocol():
    q = SUITES["quick"]
    assert (q.n_train, q.n_val, q.n_test) >= (40, 10, 10)
    assert q.n_train >= 40 and q.n_val >= 10 and q.n_test >= 10
    assert q.seeds >= 3 and len(q.lr_grid_msl) >= 2 and len(q.lr_grid_cnn) >= 2
    assert sum(q.fractions) == pytest.approx(1.0)
    assert round(q.fractions[2] * q.n_subjects) == q.n_test
    assert get_suite("quick", acq_preset="clinical").acq_preset == "clinical"
    assert get_suite("quick", acq_preset=None).acq_preset == q.acq_preset
    # CS TV and joint TV on both presets, in the main table and in Fig. 7
    assert get_suite("quick", acq_preset="paper").cs_active == ("tv", "jtv")
    assert get_suite("quick", acq_preset="clinical").cs_active == ("tv", "jtv")
    assert set(q.cs_robustness) == {"tv", "jtv"}
    assert get_suite("micro").cs_active == ("tv", "jtv", "dtv")


def test_scoreboard_subject_means_and_paired_ci():
    subjects = ["a", "a", "b", "b", "c", "c"]
    sb = Scoreboard(subjects)
    gen = torch.Generator().manual_seed(0)
    ref = torch.rand(6, 16, 16, generator=gen)
    good = (ref + 0.01 * torch.randn(6, 16, 16, generator=gen)).clamp(0, 1)
    bad = (ref + 0.2 * torch.randn(6, 16, 16, generator=gen)).clamp(0, 1)
    sb.add("MSL", "CT", good, ref)
    sb.add("other", "CT", bad, ref, converged=True)
    rows = {r["method"]: r for r in sb.rows()}
    mae = np.asarray(sb.values["MSL"]["CT"]["MAE"])
    per_subj = mae.reshape(3, 2).mean(1)
    assert rows["MSL"]["MAE"] == pytest.approx(per_subj.mean())
    assert rows["MSL"]["MAE_std"] == pytest.approx(per_subj.std(ddof=1))
    assert rows["other"]["converged"] is True
    comp = sb.compare("MSL", "CT", ("SSIM", "MAE"))
    assert [c["metric"] for c in comp] == ["SSIM", "MAE"]
    for c in comp:
        assert c["n_subjects"] == 3 and c["verdict"].startswith("MSL beats other")
        assert c["ci_low"] <= c["diff"] <= c["ci_high"]
    d = sb.to_dict()
    assert d["subject_ids"] == ["a", "b", "c"]
    assert d["per_subject"]["MSL"]["CT"]["MAE"] == pytest.approx(per_subj.tolist())
    with pytest.raises(ValueError, match="slices"):
        sb.add("x", "CT", good[:3], ref[:3])


def test_budget_fit_stops_on_time_and_keeps_the_validation_best():
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    steps = []

    def step(x):  # walks the weight up by 1 per step; validation prefers weight 3
        with torch.no_grad():
            model.weight += x
        steps.append(1)
        time.sleep(0.002)

    info = budget_fit(
        model,
        step,
        [(1.0,)],
        0.2,
        val_fn=lambda: abs(float(model.weight.detach()) - 3.0),
        val_every=1,
    )
    assert 0.2 <= info["seconds"] < 1.0
    assert info["iterations"] == len(steps) > 5
    assert float(model.weight.detach()) == 3.0 and info["best_step"] == 3
    lr, scores = tune_lr(lambda lr, s: lr, lambda m: abs(m - 1e-3), [1e-4, 1e-3, 1e-2], 0.1)
    assert lr == 1e-3 and set(scores) == {"0.0001", "0.001", "0.01"}


def test_presets_build_a_simulation_spec():
    import geometries as geo
    from benchmarks.acquisition import ood_geometry, ood_preset

    mask = geo.CartesianMask(shape=(32, 32), acceleration=4, center_fraction=0.1, seed=0)
    paper = simulation_spec(get_preset("paper"), image_size=32, n_views=16, masks={"t1": mask})
    assert paper.ct_noise.i0 is None and paper.n_coils == 1 and paper.preset.name == "paper"
    assert paper.geometry.n_views == 16
    shifted = simulation_spec(
        get_preset("paper"),
        image_size=32,
        n_views=16,
        masks={"t1": mask},
        ct_i0_scale=0.25,
        geometry=ood_geometry(get_preset("paper")),
    )
    assert shifted.ct_noise.i0 is not None and shifted.ct_noise.i0 > 0  # a dose shift
    assert type(shifted.geometry).__name__ != type(paper.geometry).__name__  # another scanner
    clinical = get_preset("clinical")
    spec = simulation_spec(clinical, image_size=32, n_views=16, masks={"t1": mask})
    assert spec.ct_noise.i0 == clinical.ct_i0 and spec.n_coils == clinical.n_coils
    low = simulation_spec(clinical, image_size=32, n_views=16, masks={}, ct_i0_scale=0.25)
    assert low.ct_noise.i0 == pytest.approx(0.25 * clinical.ct_i0)
    ood = ood_preset(clinical)
    assert ood.anatomy == "procedural" and ood.lesion_probability == 1.0
    assert ood.heldout_procedural_fraction == 0.0
    with pytest.raises(ValueError):
        get_preset("nope")


def test_batch_operator_follows_the_kspace_it_was_registered_with():
    class Scale:
        def __init__(self, a):
            self.a = a

        def __call__(self, x):
            return self.a * x

        def H(self, y):
            return self.a * y

    bop = _BatchOperator()
    k1, k2 = torch.ones(2), torch.ones(2)
    bop.register(k1, Scale(2.0))
    bop.register(k2, Scale(3.0))
    assert float(bop.H(k1)[0]) == 2.0 and float(bop(torch.ones(1))[0]) == 2.0
    assert float(bop.H(k2)[0]) == 3.0 and float(bop(torch.ones(1))[0]) == 3.0
    assert bop.a == 3.0


def test_findings_say_where_msl_loses_and_by_how_much():
    row = {
        "target": "CT",
        "metric": "SSIM",
        "method": "TV",
        "reference": "MSL",
        "verdict": "TV beats MSL (Δ = 0.02, 95% CI [0.01, 0.03], 10 subjects)",
    }
    other = dict(row, method="FBP", verdict="MSL beats FBP (Δ = -0.1, ...)")
    data = {"experiments": {"main_table": {"tables": {"main — paired 95% CI": [row, other]}}}}
    lines = _findings(data)
    assert len(lines) == 2
    assert "Δ = 0.02" in lines[0] and "(MSL loses)" in lines[0]
    assert "(MSL loses)" not in lines[1]
    # a method whose name prefixes the reference's: the reference won, nobody is flagged
    pre = dict(
        row, method="MSL", reference="MSL (shift-trained)",
        verdict="MSL (shift-trained) beats MSL (Δ = -0.1, 95% CI [-0.2, -0.05], 10 subjects)",
    )  # fmt: skip
    flagged = _findings({"experiments": {"registration": {"tables": {"paired 95% CI": [pre]}}}})
    assert len(flagged) == 1 and "loses" not in flagged[0]
