"""Claims: numeric forms with headroom, refusal of non-booleans, the claims log, and the
robustness run that reads it."""

import json
import math

import nbformat
import numpy as np
import pytest
import torch

from mmcourse import perturb
from mmcourse.check import claim, claim_between, claim_close, claim_greater, claim_less


@pytest.mark.parametrize("bad", ["False", "", 1, 0.0, math.nan, None, [True], torch.ones(2) > 0])
def test_claim_refuses_anything_but_a_boolean(bad):
    with pytest.raises(TypeError, match="condition must be a boolean"):
        claim(bad, "a statement")


@pytest.mark.parametrize("good", [True, np.bool_(True), torch.tensor(True), np.array([True])])
def test_claim_accepts_python_numpy_and_torch_booleans(good, capsys):
    claim(good, "holds")
    assert capsys.readouterr().out == "✓ holds\n"


def test_numeric_claims_hold_fail_and_print_their_figures(capsys):
    claim_greater(0.9, 0.8, "{value:.0%} > {bound:.0%} for {who}", who="fusion")
    claim_less(torch.tensor(0.1), 0.2, "{value:.1f} < {bound}")
    assert capsys.readouterr().out == "✓ 90% > 80% for fusion\n✓ 0.1 < 0.2\n"
    with pytest.raises(AssertionError, match="short of holding by 0.1"):
        claim_greater(0.7, 0.8, "{value} > {bound}")
    with pytest.raises(AssertionError):
        claim_greater(0.8, 0.8, "strict: equality fails")
    with pytest.raises(AssertionError):
        claim_less(0.3, 0.2, "{value} < {bound}")


def test_between_and_close(capsys):
    claim_between(0.5, 0.4, 0.6, "{value} in [{low}, {high}]")
    claim_between(0.4, 0.4, 0.6, "the ends are included")
    with pytest.raises(AssertionError):
        claim_between(0.7, 0.4, 0.6, "{value} in [{low}, {high}]")
    with pytest.raises(ValueError, match="low must not exceed high"):
        claim_between(0.5, 0.6, 0.4, "reversed")
    claim_close(1.0 + 1e-9, 1.0, "{actual} equals {expected}")
    claim_close(1.05, 1.0, "within abs_tol", abs_tol=0.1)
    with pytest.raises(AssertionError):
        claim_close(1.1, 1.0, "{actual} equals {expected}", rel=1e-3)
    with pytest.raises(ValueError, match="rel and abs_tol"):
        claim_close(1.0, 1.0, "negative tolerance", rel=-1)


@pytest.mark.parametrize("bad", ["0.9", None, True, torch.ones(3)])
def test_numeric_claims_refuse_non_numbers(bad):
    with pytest.raises(TypeError, match="value must be a real number"):
        claim_greater(bad, 0.5, "x")


def test_a_nan_value_fails_the_claim_instead_of_passing():
    with pytest.raises(AssertionError, match="value is NaN"):
        claim_less(float("nan"), 1.0, "loss below 1")
    with pytest.raises(AssertionError, match="bound is NaN"):
        claim_greater(1.0, float("nan"), "x")


def test_figures_may_not_shadow_the_claims_own_arguments():
    with pytest.raises(TypeError, match="value"):
        claim_greater(0.9, 0.8, "{value}", value=0.1)
    with pytest.raises(TypeError, match="expected"):
        claim_close(1.0, 1.0, "{actual}", expected=3.0)


def test_each_claim_logs_its_headroom(tmp_path, monkeypatch, capsys):
    log = tmp_path / "claims.jsonl"
    monkeypatch.setenv("MMCOURSE_CLAIMS_LOG", str(log))
    claim_greater(0.9, 0.8, "acc {value:.2f} above {bound}")
    claim_less(0.25, 1.0, "loss {value} below {bound}")
    claim_between(0.3, 0.0, 1.0, "in range")
    claim_close(2.0, 2.1, "close", abs_tol=0.25)
    claim(True, "a plain fact")
    with pytest.raises(AssertionError):
        claim_greater(0.5, 0.8, "acc {value:.2f} above {bound}")
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["kind"] for r in rows] == ["greater", "less", "between", "close", "bool", "greater"]
    assert [r["holds"] for r in rows] == [True] * 5 + [False]
    assert rows[0]["headroom"] == pytest.approx(0.1) and rows[0]["value"] == 0.9
    assert rows[1]["headroom"] == pytest.approx(0.75)
    assert rows[2]["headroom"] == pytest.approx(0.3)
    assert rows[3]["headroom"] == pytest.approx(0.15)
    assert rows[4]["headroom"] is None
    assert rows[5]["headroom"] == pytest.approx(-0.3)
    assert rows[0]["id"] != rows[5]["id"]  # the same message twice: two claims
    assert rows[0]["id"].split(" #")[0] == rows[5]["id"].split(" #")[0]


def _runs(values_by_run):
    return [
        {
            "notebook": "nb.ipynb",
            "claims": [
                {
                    "id": "m #1",
                    "text": "t",
                    "kind": "greater",
                    "holds": v > 0.5,
                    "headroom": v - 0.5,
                    "value": v,
                }
            ],
        }  # fmt: skip
        for v in values_by_run
    ]


def test_summary_takes_the_smallest_headroom_and_the_spread():
    (row,) = perturb.summarise(_runs([0.9, 0.75, 0.8]))
    assert row["runs"] == 3 and row["failed"] == 0
    assert row["min_headroom"] == pytest.approx(0.25)
    assert row["spread"] == pytest.approx(0.15)
    assert not row["tight"]
    (row,) = perturb.summarise(_runs([0.9, 0.55, 0.8]))
    assert row["tight"]  # 0.05 of headroom left, the value moved by 0.35
    (row,) = perturb.summarise(_runs([0.9, 0.4]))
    assert row["failed"] == 1


def test_perturbation_env_sets_seed_threads_kernel_and_log(tmp_path):
    env = perturb.perturbation_env(2, 1, "avx2", tmp_path / "log")
    assert env["MMCOURSE_SEED_OFFSET"] == "2" and env["MMCOURSE_THREADS"] == "1"
    assert env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert "ATEN_CPU_CAPABILITY" not in perturb.perturbation_env(0, 2, "native", tmp_path)
    with pytest.raises(ValueError, match="kernel"):
        perturb.perturbation_env(0, 1, "avx9000", tmp_path)


def test_robustness_run_executes_a_notebook_per_setting_and_fails_on_a_claim(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    # The value depends on the seed offset: it holds for offset 0 and fails for offset 1.
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import mmcourse\nfrom mmcourse.check import claim_less\n"
            "used = mmcourse.seed_everything(0)\n"
            "claim_less(used, 1, 'seed used {value} is below {bound}')"
        )
    )
    path = tmp_path / "01_seeded.ipynb"
    nbformat.write(nb, path)
    report = tmp_path / "report.json"
    table = tmp_path / "headroom.md"
    args = [str(path), "--threads", "1", "--kernels", "native", "--json", str(report)]
    assert perturb.main([*args, "--seeds", "0", "--markdown", str(table)]) == 0
    assert "seed used 0 is below 1" in table.read_text()
    assert perturb.main([*args, "--seeds", "0", "1"]) == 1
    runs = json.loads(report.read_text())["runs"]
    assert [r["ok"] for r in runs] == [True, False]
    assert runs[0]["claims"][0]["headroom"] == 1
    assert runs[1]["claims"][0]["holds"] is False
    out = capsys.readouterr().out
    assert "1 claims failed somewhere" in out and "✗" in out
