"""mmcourse.distributed and fit under torch.distributed: sharding, a one-rank process group in
this process, and a real two-process torchrun run compared with one process."""

import os
import sys

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from mmcourse import distributed as D
from mmcourse import distributed_demo as demo
from mmcourse.train import InMemoryLoader, fit
from mmcourse.utils import seed_everything

# Two processes of a 10,000-parameter MLP on 1,200 digits: float sums in another order differ
# by ~1e-7 relative (measured: at most 1.1e-6 of the weights' scale after 4 epochs, 8e-6 when
# the reference process uses 2 threads, 1e-5 with uneven shares); a wrong gradient scale or a
# missed shard gives differences > 1e-2.
TOLERANCE = 1e-4


def test_shard_batch_takes_strided_rows_and_covers_the_batch():
    batch = {"x": torch.arange(10)[:, None].float(), "label": torch.arange(10), "name": "b"}
    shards = [D.shard_batch(batch, r, 3) for r in range(3)]
    assert shards[1]["label"].tolist() == [1, 4, 7]
    assert shards[0]["name"] == "b"  # non-tensors pass through
    union = sorted(torch.cat([s["label"] for s in shards]).tolist())
    assert union == list(range(10))
    with pytest.raises(ValueError, match="rank"):
        D.shard_batch(batch, 3, 3)
    with pytest.raises(ValueError, match="world_size"):
        D.shard_batch(batch, 0, 0)
    with pytest.raises(TypeError, match="batch"):
        D.shard_batch([1, 2], 0, 2)


class _Rows(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return {"x": torch.tensor([float(i)]), "label": torch.tensor(i)}


def test_shard_loader_rebuilds_a_dataloader_with_a_distributed_sampler():
    loader = DataLoader(_Rows(), batch_size=4)
    ranks = [list(D.shard_loader(loader, r, 2)) for r in range(2)]
    for k, full in enumerate(loader):  # each global batch is the union of the ranks' batches
        union = torch.cat([ranks[0][k]["label"], ranks[1][k]["label"]])
        assert sorted(union.tolist()) == full["label"].tolist()
    assert isinstance(D.shard_loader(loader, 0, 2).sampler, torch.utils.data.DistributedSampler)
    with pytest.raises(ValueError, match="divisible"):
        D.shard_loader(DataLoader(_Rows(), batch_size=3), 0, 2)
    assert D.shard_loader(loader, 0, 1) is loader  # one process: untouched


def test_sharded_in_memory_loader_follows_the_seeded_global_order():
    data = {"x": torch.arange(20.0)[:, None], "label": torch.arange(20)}
    loader = InMemoryLoader(data, batch_size=8, shuffle=True, seed=3)
    sharded = D.ShardedLoader(loader, 1, 2)
    assert sharded.generator is loader.generator and len(sharded) == 3
    global_batches = list(InMemoryLoader(data, batch_size=8, shuffle=True, seed=3))
    for full, part in zip(global_batches, sharded, strict=True):
        assert torch.equal(part["label"], full["label"][1::2])


def test_not_distributed_by_default():
    assert not D.is_distributed()
    assert (D.get_rank(), D.get_world_size(), D.is_main_process()) == (0, 1, True)
    assert D.all_reduce_sum(1, 2.5) == [1.0, 2.5]
    model = torch.nn.Linear(2, 2)
    assert D.wrap_model(model) is model


@pytest.fixture
def one_rank_group():
    """A real gloo process group of one rank in this process (loopback only)."""
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{D.free_port()}", rank=0, world_size=1
    )
    yield
    dist.destroy_process_group()


def _fit_digits():
    model, history, _ = demo.train_ddp(epochs=2, batch_size=100)
    return history.records, [p.detach().clone() for p in model.parameters()]


def test_fit_in_a_one_rank_group_takes_the_ddp_path_and_changes_nothing(one_rank_group):
    assert D.is_distributed() and D.get_world_size() == 1
    wrapped = D.wrap_model(torch.nn.Linear(2, 2))
    assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
    records, params = _fit_digits()
    dist.destroy_process_group()  # now the plain single-process path
    plain_records, plain_params = _fit_digits()
    dist.init_process_group(  # for the fixture's teardown
        "gloo", init_method=f"tcp://127.0.0.1:{D.free_port()}", rank=0, world_size=1
    )
    assert records == plain_records
    for a, b in zip(params, plain_params, strict=True):
        assert torch.equal(a, b)


def test_torchrun_command():
    command = D.torchrun_command("mmcourse.distributed_demo", ["--out", "x.pt"], 2, port=29555)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc_per_node=2" in command and "--master_port=29555" in command
    assert command[-4:] == ["-m", "mmcourse.distributed_demo", "--out", "x.pt"]
    with pytest.raises(TypeError, match="module"):
        D.torchrun_command("", [])


def test_launch_reports_a_failing_run(monkeypatch):
    failing = [sys.executable, "-c", "import sys; print('rank said why'); sys.exit(3)"]
    monkeypatch.setattr(D, "torchrun_command", lambda *args, **kwargs: failing)
    with pytest.raises(RuntimeError, match="exit code 3(.|\n)*rank said why"):
        D.launch("mmcourse.distributed_demo", ["--epochs", "1"], nproc_per_node=1, timeout=60)


def test_launch_runs_again_once_when_a_rank_is_killed_by_a_signal(monkeypatch, tmp_path):
    # the first run dies as gloo once did in CI (rank 0 aborted); the second succeeds
    marker = tmp_path / "first-run-done"
    crash_once = (
        "import pathlib, sys; m = pathlib.Path(sys.argv[1])\n"
        "if not m.exists():\n"
        "    m.touch(); print('exitcode  : -6 (pid: 1)', file=sys.stderr); sys.exit(1)\n"
        "print('ok')"
    )
    command = [sys.executable, "-c", crash_once, str(marker)]
    monkeypatch.setattr(D, "torchrun_command", lambda *args, **kwargs: command)
    assert D.launch("mmcourse.distributed_demo", timeout=60).stdout.strip() == "ok"
    marker.unlink()  # with no retries allowed, the crash is reported
    with pytest.raises(RuntimeError, match="exit code 1(.|\n)*exitcode  : -6"):
        D.launch("mmcourse.distributed_demo", timeout=60, retries=0)
    with pytest.raises(ValueError, match="retries"):
        D.launch("mmcourse.distributed_demo", retries=-1)


def test_launch_does_not_repeat_an_ordinary_failure(monkeypatch, tmp_path):
    count = tmp_path / "runs"
    fails = f"open({str(count)!r}, 'a').write('x'); raise SystemExit(2)"  # counts its runs
    monkeypatch.setattr(D, "torchrun_command", lambda *a, **k: [sys.executable, "-c", fails])
    with pytest.raises(RuntimeError, match="exit code 2"):
        D.launch("mmcourse.distributed_demo", timeout=60, retries=3)
    assert count.read_text() == "x"


def test_killed_by_signal_reads_torchrun_s_summary():
    assert D.killed_by_signal("  rank : 0\n  exitcode  : -6 (pid: 7598)\n")
    assert not D.killed_by_signal("  exitcode  : 1 (pid: 7598)\n")
    assert not D.killed_by_signal("")


def test_two_processes_train_the_same_model_as_one(tmp_path):
    # a global batch of 75: the two ranks get 38 and 37 rows, so the loss weighting matters
    # (without it the weights differ by ~10% of their scale after 2 epochs: simulated)
    out = tmp_path / "ddp.pt"
    D.launch(
        "mmcourse.distributed_demo",
        ["--out", out, "--epochs", "2", "--batch-size", "75", "--fsdp-steps", "3"],
        nproc_per_node=2,
        timeout=180,
    )
    ddp = torch.load(out, weights_only=True)
    seed_everything(0)
    single = demo.run(epochs=2, batch_size=75, fsdp_steps=3)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp["history"].keys() == single["history"].keys()
    for key, values in single["history"].items():
        assert ddp["history"][key] == pytest.approx(values, rel=TOLERANCE, abs=1e-7), key
    for name, tensor in single["state_dict"].items():  # relative to the tensor's scale
        gap = (ddp["state_dict"][name] - tensor).abs().max() / tensor.abs().max()
        assert float(gap) < TOLERANCE, (name, float(gap))
    # the model really trained, so that equality is not trivial
    assert single["history"]["val_accuracy"][-1] > 0.8
    # FSDP2: the same losses, and each rank held half of the parameters
    assert ddp["fsdp_losses"] == pytest.approx(single["fsdp_losses"], rel=TOLERANCE)
    assert ddp["fsdp_params_held"] == single["params"] // 2
    assert single["fsdp_params_held"] == single["params"]


@pytest.mark.skipif(os.name != "posix", reason="torchrun's local launch is tested on POSIX")
def test_free_port_is_bindable():
    import socket

    port = D.free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_only_rank_0_writes_the_checkpoint_and_shows_progress(
    one_rank_group, monkeypatch, tmp_path, capsys
):
    train, val = demo.digits_tensors()
    small = {k: v[:200] for k, v in train.items()}

    def run(path):
        seed_everything(0)
        fit(demo.DigitsMLP(8), [small], [val], epochs=2, checkpoint=path, progress=True)
        return capsys.readouterr().err

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert "epochs" in run(tmp_path / "rank0.pt") and (tmp_path / "rank0.pt").exists()
    monkeypatch.setattr(D, "is_main_process", lambda: False)  # pretend to be rank 1
    assert "epochs" not in run(tmp_path / "rank1.pt")
    assert not (tmp_path / "rank1.pt").exists()
