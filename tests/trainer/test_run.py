"""The training loop end to end on a generated CUB-layout dataset: outputs, resume, KD, learning."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from testlib.models import TINY_ARCH
from torch import nn

from trainer.cli import run_main
from trainer.config import RunConfig, apply_overrides
from trainer.data.cub import read_cub
from trainer.data.dataset import make_splits
from trainer.data.loaders import build_batch_sources
from trainer.loop import setup
from trainer.loop.checkpoint import load_checkpoint
from trainer.loop.engine import evaluate
from trainer.loop.reporters import BaseReporter, JsonLinesReporter
from trainer.loop.run import resume, train_run
from trainer.models.build import build_model
from trainer.models.param_groups import build_optimizer
from trainer.protocol import EPOCH_FIELDS

# Every row carries these; the distillation parts only when a teacher is on, the device's memory and
# utilization only on CUDA.
EPOCH_KEYS = {"epoch", *EPOCH_FIELDS} - {"train_task_loss", "train_kd_loss", "peak_memory_bytes", "gpu_utilization"}
TIMING_KEYS = {"seconds", "images_per_s", "data_wait_share", "peak_rss_bytes"}
RESULT_KEYS = {"test_top1", "test_top5", "checkpoint_epoch", "checkpoint_valid_top1", "peak_epoch", "peak_valid_top1"}


def tiny_config(data_root: Path, **overrides) -> RunConfig:
    values = {
        "name": "tiny",
        "epochs": 2,
        "batch_size": 16,
        "data": {"root": str(data_root), "image_size": 32, "num_workers": 0},
        "model": {"arch": TINY_ARCH, "pretrained": False},
        "runtime": {"device": "cpu", "step_log_every": 2},
    }
    return RunConfig.from_dict(apply_overrides(values, overrides))


def prepare(run_dir: Path, config: RunConfig) -> Path:
    run_dir.mkdir(parents=True)
    config.save(run_dir / "config.json")
    return run_dir


class Recorder(BaseReporter):
    def __init__(self):
        self.events: list[tuple[str, dict]] = []

    def start(self, info):
        self.events.append(("start", info))

    def step(self, event):
        self.events.append(("step", event))

    def epoch(self, row):
        self.events.append(("epoch", row))

    def result(self, result):
        self.events.append(("result", result))

    def of(self, kind: str) -> list[dict]:
        return [payload for name, payload in self.events if name == kind]


class CrashAfterEpoch(BaseReporter):
    class Crash(Exception):
        pass

    def __init__(self, epoch: int):
        self.crash_epoch = epoch

    def epoch(self, row):
        if row["epoch"] == self.crash_epoch:
            raise self.Crash()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_folder_holds_every_output(demo_dataset, tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(demo_dataset))
    recorder = Recorder()
    result = train_run(run_dir, reporter=recorder)

    rows = read_jsonl(run_dir / "metrics.jsonl")
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        assert row.keys() >= EPOCH_KEYS
        assert 0 <= row["valid_top1"] <= row["valid_top5"] <= 100
        assert 0 <= row["data_wait_share"] <= 1
    assert result.keys() >= RESULT_KEYS
    assert json.loads((run_dir / "result.json").read_text()) == result
    assert (run_dir / "checkpoints" / "best.pt").exists() and (run_dir / "checkpoints" / "last.pt").exists()
    assert recorder.of("epoch") == rows
    steps = recorder.of("step")
    assert steps and all(event["step"] % 2 == 0 and event["lr"] > 0 for event in steps)
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert {"model", "optimizer", "epoch", "rng", "config"} <= last.keys()
    assert RunConfig.model_validate(last["config"]) == RunConfig.load(run_dir / "config.json")


def test_the_kept_checkpoint_is_the_lowest_validation_loss_and_the_peak_the_highest_top1(demo_dataset, tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(demo_dataset, epochs=3))
    result = train_run(run_dir, reporter=BaseReporter())
    rows = read_jsonl(run_dir / "metrics.jsonl")
    kept = min(rows, key=lambda row: row["valid_loss"])
    assert result["checkpoint_epoch"] == kept["epoch"]
    assert (result["checkpoint_valid_top1"], result["checkpoint_valid_top5"]) == (
        kept["valid_top1"],
        kept["valid_top5"],
    )
    assert load_checkpoint(run_dir / "checkpoints" / "best.pt")["epoch"] == kept["epoch"]
    peak = max(rows, key=lambda row: (row["valid_top1"], -row["epoch"]))
    assert (result["peak_epoch"], result["peak_valid_top1"], result["peak_valid_top5"]) == (
        peak["epoch"],
        peak["valid_top1"],
        peak["valid_top5"],
    )


def test_resume_after_two_epochs_equals_four_straight(demo_dataset, tmp_path):
    config = tiny_config(demo_dataset, epochs=4, **{"tricks.mixup_alpha": 0.2, "schedule.name": "onecycle"})
    straight = prepare(tmp_path / "straight", config)
    train_run(straight, reporter=BaseReporter())

    resumed = prepare(tmp_path / "resumed", config)
    with pytest.raises(CrashAfterEpoch.Crash):
        train_run(resumed, reporter=CrashAfterEpoch(2))
    assert [row["epoch"] for row in read_jsonl(resumed / "metrics.jsonl")] == [1, 2]
    recorder = Recorder()
    train_run(resumed, reporter=recorder)

    assert recorder.of("start")[0]["start_epoch"] == 2
    assert without_timing(read_jsonl(resumed / "metrics.jsonl")) == without_timing(
        read_jsonl(straight / "metrics.jsonl")
    )
    weights_a = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    weights_b = load_checkpoint(resumed / "checkpoints" / "last.pt")["model"]
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name


def without_timing(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in TIMING_KEYS} for row in rows]


def test_resumed_attempt_reports_stored_epochs_again(demo_dataset, tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(demo_dataset, epochs=3))
    with pytest.raises(CrashAfterEpoch.Crash):
        train_run(run_dir, reporter=CrashAfterEpoch(1))
    lines = tmp_path / "events.jsonl"
    with lines.open("w") as stream:
        train_run(run_dir, reporter=JsonLinesReporter(stream))
    events = read_jsonl(lines)
    assert events[0]["type"] == "start" and events[0]["start_epoch"] == 1
    assert [event["epoch"] for event in events if event["type"] == "epoch"] == [1, 2, 3]
    assert events[-1]["type"] == "result"


def test_changed_config_refuses_to_resume(demo_dataset, tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(demo_dataset, epochs=3))
    with pytest.raises(CrashAfterEpoch.Crash):
        train_run(run_dir, reporter=CrashAfterEpoch(1))
    tiny_config(demo_dataset, epochs=3, **{"optim.lr": 0.01}).save(run_dir / "config.json")
    from trainer.loop.setup import RunError

    with pytest.raises(RunError, match="different configuration"):
        train_run(run_dir, reporter=BaseReporter())


def test_distillation_with_label_smoothing_and_mixup(demo_dataset, tmp_path):
    teacher_dir = prepare(tmp_path / "teacher", tiny_config(demo_dataset, epochs=1))
    train_run(teacher_dir, reporter=BaseReporter())
    student = tiny_config(
        demo_dataset,
        epochs=1,
        **{
            "tricks.kd.teacher": str(teacher_dir),
            "tricks.label_smoothing": 0.1,
            "tricks.mixup_alpha": 0.2,
            "schedule.name": "cosine",
        },
    )
    run_dir = prepare(tmp_path / "student", student)
    recorder = Recorder()
    train_run(run_dir, reporter=recorder)
    row = recorder.of("epoch")[0]
    assert row["train_kd_loss"] > 0 and row["train_task_loss"] > 0
    alpha = student.tricks.kd.alpha
    assert row["train_loss"] == pytest.approx(
        alpha * row["train_task_loss"] + (1 - alpha) * row["train_kd_loss"], rel=1e-6
    )


def test_evaluate_averages_over_images_not_batches():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 7))
    images = torch.randn(23, 3, 2, 2)
    targets = torch.randint(0, 7, (23,))
    batches = [(images[:16], targets[:16]), (images[16:], targets[16:])]  # a short last batch
    stats = evaluate(model=model, loader=batches)
    with torch.no_grad():
        logits = model(images)
    assert stats["loss"] == pytest.approx(F.cross_entropy(logits, targets).item(), rel=1e-6)
    assert stats["top1"] == pytest.approx(100 * (logits.argmax(1) == targets).float().mean().item())
    top5 = logits.topk(5, dim=1).indices.eq(targets[:, None]).any(1).float().mean().item()
    assert stats["top5"] == pytest.approx(100 * top5)
    assert stats["images"] == 23


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_module_entry_streams_json_lines(demo_dataset, tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(demo_dataset, epochs=1))
    (run_dir / "ATTEMPT").write_text("1")
    completed = run_module("run", str(run_dir), "--attempt", "1")
    assert completed.returncode == 0, completed.stderr
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [event["type"] for event in events if event["type"] != "step"] == ["start", "epoch", "result"]
    assert events[[e["type"] for e in events].index("epoch")].keys() >= EPOCH_KEYS
    assert list((run_dir / "tb" / "valid").glob("events.out.tfevents.*"))


def test_module_entry_reports_user_errors_without_traceback(tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(tmp_path / "nowhere", epochs=1))
    completed = run_module("run", str(run_dir))
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    error = json.loads(completed.stdout.splitlines()[-1])
    assert error["type"] == "error" and "tricklab data demo" in error["message"]


def test_superseded_attempt_writes_nothing(demo_dataset, tmp_path):
    run_dir = prepare(tmp_path / "run", tiny_config(demo_dataset, epochs=1))
    (run_dir / "ATTEMPT").write_text("2")
    completed = run_module("run", str(run_dir), "--attempt", "1")
    assert completed.returncode == 3
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()


def tricklab_train(*args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "backend", "train", *map(str, args)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)


def test_train_command_with_overrides(demo_dataset, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        f"name: cli\nepochs: 1\ndata:\n  root: {demo_dataset}\n  num_workers: 0\n"
        f"model:\n  arch: {TINY_ARCH}\n  pretrained: false\n"
    )
    out = tmp_path / "out"
    completed = tricklab_train(config_file, "--set", "data.image_size=32", "--set", "batch_size=16", "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    saved = RunConfig.load(out / "config.json")
    assert saved.data.image_size == 32 and saved.batch_size == 16
    assert "test top-1" in completed.stderr and "(checkpoint epoch 1); peak valid top-1 " in completed.stderr
    assert "(peak epoch 1)" in completed.stderr and "best" not in completed.stderr

    bad = tricklab_train(config_file, "--set", "tricks.mixup_alpah=0.2")
    assert bad.returncode == 1 and "tricks.mixup_alpah: unknown key" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_resume_reads_the_checkpoint_onto_the_cpu_and_moves_only_what_belongs_on_the_device(demo_dataset, tmp_path):
    """The model on ``meta`` stands in for a GPU: the random states must be set from CPU tensors and
    Adam's step counters stay on the CPU (on a GPU each would cost a host sync per step)."""
    config = tiny_config(demo_dataset, epochs=2)
    run_dir = prepare(tmp_path / "run", config)
    with pytest.raises(CrashAfterEpoch.Crash):
        train_run(run_dir, reporter=CrashAfterEpoch(1))
    saved = load_checkpoint(run_dir / "checkpoints" / "last.pt")

    model = build_model(config.model.arch, 4, pretrained=False).to("meta")
    optimizer = build_optimizer(model, config.optim)
    torch.manual_seed(999)  # something else than the checkpoint's state
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*copying from a non-meta parameter")
        progress = resume(run_dir / "checkpoints" / "last.pt", config=config, model=model, optimizer=optimizer)

    assert progress.epoch == 1
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    states = [optimizer.state[param] for param in model.parameters()]
    assert len(states) == len(list(model.parameters()))
    assert {state["step"].device.type for state in states} == {"cpu"}
    assert {state[moment].device.type for state in states for moment in ("exp_avg", "exp_avg_sq")} == {"meta"}


def test_compile_trains_full_batches_only(demo_dataset):
    """runtime.compile drops the last partial train batch (one shape, one graph); eval keeps every image."""
    index = read_cub(demo_dataset)
    splits = make_splits(index, split="seed")
    for pipeline in ("fast", "reference"):
        eager = tiny_config(demo_dataset, batch_size=10, **{"data.pipeline": pipeline})
        compiled = tiny_config(demo_dataset, batch_size=10, **{"data.pipeline": pipeline, "runtime.compile": True})
        plain = build_batch_sources(eager, index=index, splits=splits, device=torch.device("cpu"))
        full = build_batch_sources(compiled, index=index, splits=splits, device=torch.device("cpu"))
        train = len(splits.train)
        assert train % 10, "the split must leave a partial batch for the test to mean anything"
        assert len(plain.train) == -(-train // 10) and len(full.train) == train // 10
        full.train.set_epoch(1)
        assert [targets.numel() for _, targets in full.train] == [10] * (train // 10)
        assert sum(targets.numel() for _, targets in full.valid) == len(splits.valid)
    assert compiled.fingerprint() != eager.fingerprint()  # its results differ, so it is no replicate
    assert (
        tiny_config(demo_dataset).fingerprint() == tiny_config(demo_dataset, **{"runtime.device": "auto"}).fingerprint()
    )


def test_the_head_computes_float32_logits_under_bf16_autocast():
    """bf16 logits keep 8 bits of mantissa: near-equal classes tie and top-k ranks them by chance."""
    model = build_model("resnet18", 200, pretrained=False).eval()
    head = model.get_submodule("fc")
    assert isinstance(head, torch.nn.Linear)
    features: list[torch.Tensor] = []
    head.register_forward_pre_hook(lambda _module, args: features.append(args[0]))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(4, 3, 32, 32))
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, F.linear(features[0].float(), head.weight, head.bias))
    assert set(model.state_dict()) == set(torchvision.models.resnet18(num_classes=200).state_dict())


class ExhaustsMemory(nn.Module):
    """Where a real run's memory runs out: in the training step's forward pass, with torch's own error."""

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB"
            )
        return features


def test_out_of_memory_names_what_did_not_fit_and_what_to_change(demo_dataset, tmp_path, monkeypatch, capsys):
    real_build = setup.build_model

    def build_exhausting(*args, **kwargs) -> nn.Module:
        model = real_build(*args, **kwargs)
        pool = model.get_submodule("global_pool")
        model.global_pool = nn.Sequential(pool, ExhaustsMemory())  # no parameters: the groups are unchanged
        return model

    monkeypatch.setattr(setup, "build_model", build_exhausting)
    config = tiny_config(demo_dataset, epochs=1, batch_size=8, **{"data.image_size": 96})
    run_dir = prepare(tmp_path / "run", config)
    assert run_main(["run", str(run_dir)]) == 1
    error = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert error["type"] == "error"
    line = error["message"]
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("out of memory on cpu (host memory, "), line
    assert ", an allocation of 2.00 GiB failed: " in line
    assert f"{TINY_ARCH} with batch_size 8, 96 px images and fp32 does not fit" in line
    assert line.endswith("lower batch_size (e.g. 4), or a smaller data.image_size (e.g. 72)"), line
