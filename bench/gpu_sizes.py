"""What every step of ``bench.gpu_check`` shares: the sizes of a full or a smoke check, its clock and
summary, and the run config its steps train."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainer.config import RunConfig


class Sizes:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        # The smoke check's model: timm's 0.37 M-parameter ResNet, laid out as the report's.
        self.arch, self.teacher = ("test_resnet", "test_resnet") if smoke else ("resnet50", "resnet152")
        self.image_size = 32 if smoke else 224
        self.batch_size = 4 if smoke else 64
        self.shape = (
            {"classes": 4, "per_class": 10, "distinct_per_class": 2}
            if smoke
            else {"classes": 200, "per_class": 59, "distinct_per_class": 3}
        )
        self.run_epochs, self.kill_after = (2, 1) if smoke else (10, 2)
        self.study_epochs = 1
        self.study_budget = 12 if smoke else None  # None: whatever the other steps leave
        self.torchrun_epochs = 1 if smoke else 2
        self.sync_steps = 2 if smoke else 20
        self.device = "cpu" if smoke else "cuda:0"


class Check:
    """The summary, the log and the clock of one check."""

    def __init__(self, out: Path, budget: float):
        self.out = out
        self.started = time.monotonic()
        self.budget = budget
        self.summary: dict[str, Any] = {"steps": {}, "failed": []}
        self.log = (out / "gpu_check.log").open("a", buffering=1)

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def step(self, name: str, work: Callable[[], dict[str, Any]], *, needs: float = 0) -> dict[str, Any]:
        """Run ``work`` unless fewer than ``needs`` seconds are left; its figures and seconds go in the summary."""
        if self.left() < needs:
            self.say(f"{name}: skipped, {self.left():.0f} s left and it needs {needs:.0f}")
            self.summary["steps"][name] = {"skipped": f"out of time ({self.left():.0f} s left)"}
            return {}
        self.say(f"{name}: start")
        started = time.monotonic()
        try:
            figures = work()
        except Exception as exc:  # noqa: BLE001 - a check reports every step: one failure must not hide the rest
            figures = {"error": f"{type(exc).__name__}: {exc}"}
            self.summary["failed"].append(name)
        figures["seconds"] = round(time.monotonic() - started, 1)
        self.summary["steps"][name] = figures
        self.say(f"{name}: {json.dumps(figures)}")
        self.write()
        return figures

    def write(self) -> None:
        self.summary["wall_s"] = round(time.monotonic() - self.started, 1)
        (self.out / "gpu_check.json").write_text(json.dumps(self.summary, indent=2) + "\n")


def run_config(sizes: Sizes, root: Path, *, epochs: int, **overrides: Any) -> RunConfig:
    values: dict[str, Any] = {
        "name": "gpu-check",
        "epochs": epochs,
        "batch_size": sizes.batch_size,
        "data": {"root": str(root), "image_size": sizes.image_size, "num_workers": 0},
        "model": {"arch": sizes.arch, "pretrained": False},
    }
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return RunConfig.from_dict(values)
