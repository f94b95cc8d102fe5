"""The benchmark runner: results store, resume, report, and a micro suite end to end."""

from __future__ import annotations

import json

import pytest

from benchmarks.experiments import EXPERIMENTS
from benchmarks.report import render_results, table_markdown
from benchmarks.store import ResultStore


def test_table_markdown_merges_std_columns():
    rows = [
        {"method": "A", "MAE": 0.01, "MAE_std": 0.002},
        {"method": "B", "MAE": 0.5, "MAE_std": 0.1},
    ]
    md = table_markdown(rows)
    assert md.splitlines()[0] == "| method | MAE |"
    assert "0.0100 ± 0.0020" in md
    assert "| B | 0.5000 ± 0.1000 |" in md


def test_store_persists_and_resumes(tmp_path):
    path = tmp_path / "results.json"
    store = ResultStore(path, "micro", {"image_size": 32})
    assert not store.done("lambda_sweep")
    store.put("lambda_sweep", {"tables": {"t": [{"x": 1.0}]}})
    again = ResultStore(path, "micro", {"image_size": 32})
    assert again.done("lambda_sweep")
    assert again.get("lambda_sweep")["tables"]["t"][0]["x"] == 1.0
    assert again.data["environment"]["versions"]["torch"]
    again.forget("lambda_sweep")
    assert not ResultStore(path, "micro", {"image_size": 32}).done("lambda_sweep")
    # results written under another configuration are not resumed into this one
    again.put("lambda_sweep", {"tables": {}})
    assert ResultStore(path, "micro", {"image_size": 32}).done("lambda_sweep")
    other = ResultStore(path, "micro", {"image_size": 64})
    assert not other.done("lambda_sweep") and other.data["config"] == {"image_size": 64}
    with pytest.raises(ValueError, match="belongs to suite"):
        ResultStore(path, "quick", {})


def test_report_lists_every_experiment(tmp_path):
    data = {
        "suite": "micro",
        "config": {},
        "environment": {},
        "experiments": {
            "main_table": {"tables": {"main": [{"method": "MSL", "MAE": 0.1}]}, "seconds": 1.0}
        },
    }
    render_results(data, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| MSL | 0.1000 |" in text
    assert text.count("_not run_") == len(EXPERIMENTS) - 1


@pytest.mark.slow
def test_micro_suite_end_to_end(tmp_path):
    from benchmarks.__main__ import main

    out = tmp_path / "micro"
    assert main(["run", "--suite", "micro", "--out", str(out), "--quiet", "--threads", "2"]) == 0
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(data["experiments"]) == set(EXPERIMENTS)
    for name, res in data["experiments"].items():
        assert "error" not in res, (name, res.get("error"))
    mt = data["experiments"]["main_table"]
    main_rows = mt["tables"]["main"]
    methods = {r["method"] for r in main_rows}
    for m in (
        "FBP / zero-filled",
        "TV (single-modality CS)",
        "Joint TV (CS joint CT-MRI)",
        "Directional TV (CS joint CT-MRI)",
        "pix2pix (MRI→CT, CT→MRI)",
        "DeepFusion",
        "FBPConvNet (CT)",
        "Learned Primal-Dual (CT)",
        "MoDL (MRI)",
        "MSL (CT+MRI)",
        "MSL single-modality",
    ):
        assert m in methods
    for r in main_rows:
        assert {"MAE", "SSIM", "MI", "PSNR"} <= set(r)
    # paired CIs against MSL, per-slice and per-subject values, budgets and CS choices
    cis = mt["tables"]["main — paired 95% CI over test subjects"]
    assert all(r["reference"] == "MSL (CT+MRI)" and r["ci_low"] <= r["ci_high"] for r in cis)
    scores = mt["scores"]["main"]
    n_test = 2 * 2  # micro: 2 test subjects × 2 slices
    assert len(scores["subjects"]) == n_test and len(scores["subject_ids"]) == 2
    assert len(scores["per_slice"]["MSL (CT+MRI)"]["CT"]["SSIM"]) == n_test
    budgets = {r["method"]: r for r in mt["tables"]["training budgets"]}
    assert budgets["deepfusion"]["iterations"] >= 1 and budgets["deepfusion"]["lr"] is not None
    cs = mt["tables"]["CS weights (validation)"]
    assert len(cs) == 3 and all(r["grid"] and r["chosen"] for r in cs)
    assert any("converged" in r for r in main_rows)
    assert len(data["experiments"]["lambda_sweep"]["tables"]["lambda_sweep"]) == 11
    cases = {r["case"] for r in data["experiments"]["sampling_robustness"]["tables"]["robustness"]}
    assert len(cases) == 5
    shifts = {r["shift_px"] for r in data["experiments"]["registration"]["tables"]["registration"]}
    assert shifts == {0, 5, 10, 15}
    reg_methods = {
        r["method"] for r in data["experiments"]["registration"]["tables"]["registration"]
    }
    assert "MSL (shift-trained)" in reg_methods
    ood = data["experiments"]["out_of_distribution"]["tables"]
    assert {r["test_set"] for r in ood["ood"]} == {
        "in-distribution (MNI152)",
        "OOD (anatomy, dose, scanner)",
    }
    # MSL budgets are wall time, checkpoint choice included
    for row in ood["training"] + budgets_rows(mt):
        if row.get("select_s") is not None:
            assert row["seconds"] >= row["select_s"] > 0
    pet_methods = {r["method"] for r in data["experiments"]["pet"]["tables"]["pet"]}
    assert "corrected FBP" in pet_methods and any(m.startswith("MLEM") for m in pet_methods)
    gain = data["experiments"]["cross_modal_gain"]["tables"]["paired 95% CI over test subjects"]
    assert {r["views"] for r in gain} == {4, 8}
    text = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert "_not run_" not in text
    assert "## Findings" in text
    for fig in ("lambda_strip.png", "lambda_curves.png", "methods.png", "robustness.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    # a second run resumes: nothing is redone
    assert main(["run", "--suite", "micro", "--out", str(out), "--quiet"]) == 0
    again = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert (
        again["experiments"]["main_table"]["seconds"]
        == data["experiments"]["main_table"]["seconds"]
    )


def budgets_rows(result: dict) -> list[dict]:
    return list(result["tables"]["training budgets"])
