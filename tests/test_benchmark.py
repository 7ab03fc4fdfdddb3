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
