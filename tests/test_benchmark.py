"""The benchmark runs notebooks in fresh kernels and reports time and peak memory."""

import json

import nbformat

from mmcourse import benchmark


def test_benchmark_reports_time_memory_and_failures(tmp_path, capsys):
    good = nbformat.v4.new_notebook()
    good.cells.append(nbformat.v4.new_code_cell("x = bytearray(200 * 2**20)  # 200 MB"))
    bad = nbformat.v4.new_notebook()
    bad.cells.append(nbformat.v4.new_code_cell("raise ValueError('broken lesson')"))
    for name, nb in (("01_good.ipynb", good), ("02_bad.ipynb", bad)):
        nbformat.write(nb, tmp_path / name)
    out = tmp_path / "bench.json"
    code = benchmark.main(
        [str(tmp_path / "01_good.ipynb"), str(tmp_path / "02_bad.ipynb"), "--json", str(out)]
    )
    assert code == 1  # a failing notebook makes the command fail
    rows = {r["notebook"]: r for r in json.loads(out.read_text())["notebooks"]}
    assert rows["01_good.ipynb"]["ok"] and rows["01_good.ipynb"]["peak_bytes"] > 200 * 2**20
    assert rows["01_good.ipynb"]["seconds"] > 0
    assert not rows["02_bad.ipynb"]["ok"] and "broken lesson" in rows["02_bad.ipynb"]["error"]
    printed = capsys.readouterr().out
    assert "TOTAL" in printed and "budget" in printed


def test_under_load_runs_each_notebook_twice_and_reports_the_slowdown(tmp_path, capsys):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("sum(range(10**6))"))
    nbformat.write(nb, tmp_path / "01_quick.ipynb")
    out = tmp_path / "bench.json"
    assert (
        benchmark.main([str(tmp_path / "01_quick.ipynb"), "--under-load", "--json", str(out)]) == 0
    )
    (row,) = json.loads(out.read_text())["notebooks"]
    assert row["loaded_seconds"] > 0
    assert row["slowdown"] == round(row["loaded_seconds"] / row["seconds"], 2)
    assert "slowdown" in capsys.readouterr().out


def test_busy_process_keeps_a_core_busy_and_stops():
    import time

    import psutil

    with benchmark.busy_process():
        time.sleep(1.0)
        # CPU time, not percent: other processes may share the cores while tests run
        busy = [c for c in psutil.Process().children() if sum(c.cpu_times()[:2]) > 0.1]
        assert busy
    time.sleep(0.2)
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in busy)
