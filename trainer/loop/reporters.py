"""Where a run's progress goes: JSON lines for the worker, TensorBoard files, a console bar.

The trainer knows nothing of the web or the database; the worker reads the JSON lines.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from trainer.protocol import (
    START_FIELDS,
    EpochRow,
    EventType,
    LRRangeResult,
    Result,
    StartInfo,
    StepEvent,
    event_line,
)


class Reporter(Protocol):
    def start(self, info: StartInfo) -> None: ...

    def batch(self, step: int) -> None: ...

    def step(self, event: StepEvent) -> None: ...

    def epoch(self, row: EpochRow) -> None: ...

    def result(self, result: Result) -> None: ...

    def lr_range(self, result: LRRangeResult) -> None: ...

    def close(self) -> None: ...


class BaseReporter:
    """No-op hooks, so each reporter implements only what it shows."""

    def start(self, info: StartInfo) -> None:
        pass

    def batch(self, step: int) -> None:
        pass

    def step(self, event: StepEvent) -> None:
        pass

    def epoch(self, row: EpochRow) -> None:
        pass

    def result(self, result: Result) -> None:
        pass

    def lr_range(self, result: LRRangeResult) -> None:
        pass

    def close(self) -> None:
        pass


class JsonLinesReporter(BaseReporter):
    """One JSON object per line, each with a ``type``: the worker's view of the run."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def emit(self, kind: EventType, payload: Mapping[str, object]) -> None:
        # A closed pipe raises BrokenPipeError here: the worker is gone, so the run stops.
        self.stream.write(event_line(kind, payload))
        self.stream.flush()

    def start(self, info: StartInfo) -> None:
        fields: Mapping[str, object] = info  # looked up by the names in START_FIELDS
        self.emit(EventType.start, {key: fields[key] for key in START_FIELDS})
        # A resumed attempt reports the epochs its checkpoint holds again: storing them is idempotent,
        # and a reader that died before storing the last one gets it now.
        for row in info["history"]:
            self.emit(EventType.epoch, row)

    def step(self, event: StepEvent) -> None:
        self.emit(EventType.step, event)

    def epoch(self, row: EpochRow) -> None:
        self.emit(EventType.epoch, row)

    def result(self, result: Result) -> None:
        self.emit(EventType.result, result)

    def lr_range(self, result: LRRangeResult) -> None:
        self.emit(EventType.lr_range, result)


class TensorBoardReporter(BaseReporter):
    """The report's layout: writers for train, valid and lr, tags loss / accuracy / accuracy5 / LearningRate."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.writers: dict[str, Any] = {}

    def start(self, info: StartInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a crashed attempt wrote after the checkpoint it resumes from.
        purge = info["start_epoch"] + 1 if info["start_epoch"] else None
        self.writers = {
            part: SummaryWriter(str(self.log_dir / part), purge_step=purge) for part in ("train", "valid", "lr")
        }

    def epoch(self, row: EpochRow) -> None:
        epoch = row["epoch"]
        parts = {
            "train": (row["train_loss"], row["train_top1"], row["train_top5"]),
            "valid": (row["valid_loss"], row["valid_top1"], row["valid_top5"]),
        }
        for part, (loss, top1, top5) in parts.items():
            writer = self.writers[part]
            writer.add_scalar("loss", loss, epoch)
            writer.add_scalar("accuracy", top1, epoch)
            writer.add_scalar("accuracy5", top5, epoch)
        self.writers["lr"].add_scalar("LearningRate", row["lr"], epoch)
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


class ConsoleReporter(BaseReporter):
    """A progress bar per epoch and a summary line after it, for runs started by hand."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.steps_per_epoch = 0
        self.epochs = 0

    def start(self, info: StartInfo) -> None:
        self.steps_per_epoch = info["steps_per_epoch"]
        self.epochs = info["epochs"]
        resumed = f", resuming after epoch {info['start_epoch']}" if info["start_epoch"] else ""
        if info["start_step"] is not None:
            resumed = f", resuming in epoch {info['start_epoch'] + 1} at step {info['start_step']}"
        if info["fallback"]:
            print(f"training on the CPU: {info['fallback']}", file=self.stream)
        print(
            f"{info['num_train']} train / {info['num_valid']} valid / {info['num_test']} test images, "
            f"{self.steps_per_epoch} steps per epoch on {info['devices']}{resumed}",
            file=self.stream,
        )

    def batch(self, step: int) -> None:
        if self.bar is None:
            epoch = step // self.steps_per_epoch + 1
            self.bar = tqdm(
                total=self.steps_per_epoch,
                initial=step % self.steps_per_epoch,  # where a run resumed mid-epoch went on from
                desc=f"epoch {epoch}/{self.epochs}",
                file=self.stream,
                leave=False,
                dynamic_ncols=True,
            )
        self.bar.update(1)

    def step(self, event: StepEvent) -> None:
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{event['loss']:.3f}", lr=f"{event['lr']:.2e}")

    def epoch(self, row: EpochRow) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        print(
            f"epoch {row['epoch']}/{self.epochs}: train loss {row['train_loss']:.4f} "
            f"top-1 {row['train_top1']:.2f} | valid loss {row['valid_loss']:.4f} top-1 {row['valid_top1']:.2f} "
            f"top-5 {row['valid_top5']:.2f} | lr {row['lr']:.2e} | {row['seconds']:.1f} s, "
            f"{row['images_per_s']:.0f} img/s",
            file=self.stream,
        )

    def result(self, result: Result) -> None:
        print(
            f"test top-1 {result['test_top1']:.2f} top-5 {result['test_top5']:.2f} "
            f"(checkpoint epoch {result['checkpoint_epoch']}); peak valid top-1 {result['peak_valid_top1']:.2f} "
            f"(peak epoch {result['peak_epoch']})",
            file=self.stream,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class SweepConsoleReporter(BaseReporter):
    """An LR range test started by hand: a bar over the sweep's steps, with the loss and rate."""

    def __init__(self, steps: int, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.steps = steps
        self.bar: tqdm | None = None

    def start(self, info: StartInfo) -> None:
        print(
            f"LR range test: {info['num_train']} train images, {info['steps_per_epoch']} steps per epoch "
            f"on {info['devices']}; the model is thrown away afterwards",
            file=self.stream,
        )
        self.bar = tqdm(total=self.steps, desc="sweep", file=self.stream, leave=False, dynamic_ncols=True)

    def step(self, event: StepEvent) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{event['loss']:.3f}", lr=f"{event['lr']:.2e}")

    def lr_range(self, result: LRRangeResult) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FanOut(BaseReporter):
    def __init__(self, reporters: list[Reporter]):
        self.reporters = reporters

    def start(self, info: StartInfo) -> None:
        for reporter in self.reporters:
            reporter.start(info)

    def batch(self, step: int) -> None:
        for reporter in self.reporters:
            reporter.batch(step)

    def step(self, event: StepEvent) -> None:
        for reporter in self.reporters:
            reporter.step(event)

    def epoch(self, row: EpochRow) -> None:
        for reporter in self.reporters:
            reporter.epoch(row)

    def result(self, result: Result) -> None:
        for reporter in self.reporters:
            reporter.result(result)

    def lr_range(self, result: LRRangeResult) -> None:
        for reporter in self.reporters:
            reporter.lr_range(result)

    def close(self) -> None:
        for reporter in self.reporters:
            reporter.close()
