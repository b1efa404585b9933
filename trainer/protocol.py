"""What the trainer and the worker agree on: the run folder, its attempt fence, exit codes and events.

The worker prepares a run folder, writes its attempt number to ATTEMPT, starts
``python -m trainer run RUN_DIR --attempt N`` and reads one JSON event per line of the child's
stdout; the exit code says how the child ended. A run on several processes starts the same command
once per process under torchrun (``launch_command``); rank 0 prints the events. Both sides spell
all of that from here. The worker and the web process start without torch, so this module imports
none (a test holds it to that).
"""

import enum
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from trainer.files import write_atomic

EXIT_FAILED = 1
EXIT_SUPERSEDED = 3  # the trainer saw a newer attempt in RUN_DIR/ATTEMPT and wrote nothing
# The trainer stopped on the warning signal (a Slurm job about to be killed or preempted) and checkpointed
# at the step it stopped at: the run continues from the next step in the job's next start.
EXIT_WARNED = 4
WARNING_SIGNAL = "SIGUSR2"


@dataclass(frozen=True)
class RunFolder:
    """A run's whole state: its config, the epochs so far, the result, TensorBoard files, checkpoints."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def attempt(self) -> Path:
        return self.path / "ATTEMPT"

    @property
    def sweep(self) -> Path:
        """An LR range test's sweep (``trainer.lr_finder.sweep.LRSweep``): a folder holding one is a range test,
        which trains its config's model for the sweep's steps and writes no checkpoint."""
        return self.path / "sweep.json"

    @property
    def metrics(self) -> Path:
        """One JSON object per finished epoch (an ``EpochRow``)."""
        return self.path / "metrics.jsonl"

    @property
    def result(self) -> Path:
        return self.path / "result.json"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tb"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def kept_checkpoint(self) -> Path:
        """The kept checkpoint, the lowest validation loss so far: what the test pass and a distillation
        teacher read. The file keeps the name that earlier run folders have."""
        return self.checkpoints / "best.pt"

    @property
    def last_checkpoint(self) -> Path:
        """The latest epoch with optimizer and RNG states, or the step the warning signal stopped at
        (``mid_epoch`` in it): what a new attempt resumes from."""
        return self.checkpoints / "last.pt"

    def rank_logs(self, attempt: int) -> Path:
        """torchrun's ``--log-dir`` for one attempt on several processes: each rank's stderr and error file."""
        return self.path / "logs" / f"attempt-{attempt}"


def launch_command(
    trainer_command: Sequence[str],
    *,
    nproc_per_node: int,
    rendezvous: Sequence[str] = ("--standalone",),
    log_dir: Path | None = None,
    events: bool = True,
) -> list[str]:
    """torchrun (``python -m trainer launch``) starting ``trainer_command`` once per process.

    Append the trainer's own arguments (RUN_DIR ...). ``rendezvous``: torchrun's options that find
    the other hosts; the default, ``--standalone``, is one host with a rendezvous store of its own on
    a free port, so torchruns started side by side never meet. ``log_dir``: each rank's stderr also
    goes to a file there, quoted when the rank fails. ``events``: the launcher reports a failed rank
    as an error event on stdout, for the worker.
    """
    command = [sys.executable, "-m", "trainer", "launch", *(["--events"] if events else []), *rendezvous]
    command += ["--nproc-per-node", str(nproc_per_node)]
    if log_dir is not None:
        command += ["--log-dir", str(log_dir), "--redirects", "2", "--tee", "2"]
    return [*command, "--no-python", *trainer_command]


def cuda_check_command(trainer_command: Sequence[str], processes: int) -> list[str]:
    """What a GPU worker runs before it claims a run: the trainer exits 0 with one line naming the
    ``processes`` GPUs it would train on, or EXIT_FAILED with the reason on stderr (a driver too old
    for its PyTorch, no GPU visible), which the worker stops with."""
    return [*trainer_command, "--check-cuda", str(processes)]


class Superseded(Exception):
    """A newer attempt owns the run folder; this one must not write to it again."""


class Warned(Exception):
    """The warning signal came: the run stopped at the step it reached and checkpointed there, to resume at
    the next step."""


def write_attempt(folder: RunFolder, attempt: int) -> None:
    """The worker's first write to a folder: from here on a trainer of an older attempt refuses to write."""
    write_atomic(folder.attempt, f"{attempt}\n")


class AttemptFence:
    """Refuses writes once the worker has handed the folder to a newer attempt.

    A trainer left over from an older attempt sees another number in ATTEMPT and stops before
    touching anything. ``attempt`` None (a run started by hand) is never fenced.
    """

    def __init__(self, folder: RunFolder, attempt: int | None):
        self.file = folder.attempt
        self.attempt = attempt

    def check(self) -> None:
        if self.attempt is None:
            return
        current = self.file.read_text().strip() if self.file.exists() else ""
        if current != str(self.attempt):
            raise Superseded(f"attempt {self.attempt} superseded by attempt {current or '?'}")


# --- events: one JSON object per line, {"type": EventType, **fields} -----------------------------


class EventType(enum.StrEnum):
    start = "start"
    step = "step"
    epoch = "epoch"
    result = "result"
    lr_range = "lr_range"  # an LR range test's end: what it found (its steps came as step events)
    error = "error"


class EpochRow(TypedDict):
    """One finished epoch: an ``epoch`` event, a line of metrics.jsonl, a row of the epoch table."""

    epoch: int
    train_loss: float
    train_top1: float
    train_top5: float
    valid_loss: float
    valid_top1: float
    valid_top5: float
    lr: float
    seconds: float
    images_per_s: float
    train_task_loss: NotRequired[float]  # distillation's parts, when it is on
    train_kd_loss: NotRequired[float]
    # Where the training pass's time went (rank 0's figures with several processes): the share of it
    # spent waiting for the next batch, the device memory's peak (CUDA only) and the GPU's mean
    # utilization from NVML (CUDA with NVML only). Rows written before these fields have none.
    data_wait_share: NotRequired[float]
    peak_memory_bytes: NotRequired[int]
    gpu_utilization: NotRequired[float]  # percent of the time a kernel ran, as nvidia-smi says
    # The trainer process's peak resident memory so far (rank 0's): quoted when the system kills it.
    peak_rss_bytes: NotRequired[int]


class StartEvent(TypedDict):
    epochs: int
    steps_per_epoch: int
    start_epoch: int  # the epochs before it come from a checkpoint; rows after it are superseded
    # The steps done before it, when it resumes from a mid-epoch checkpoint (the warning signal's), in
    # epoch start_epoch + 1; None when it starts at an epoch's start.
    start_step: int | None
    num_train: int
    num_valid: int
    num_test: int
    num_classes: int
    device: str  # this process's torch device, e.g. "cuda:0" or "cpu"
    world_size: int  # the processes training the run (torchrun's WORLD_SIZE; 1 alone)
    devices: str  # what they train on, e.g. "4 × H200" or "2 × CPU (gloo)"
    fallback: str | None  # why runtime.device auto trains on the CPU (CUDA cannot be used); None otherwise
    software: str  # what trains it, e.g. "tricklab 0.1.0, torch 2.5.1+cu124": a report's provenance


class StartInfo(StartEvent):
    """What the loop tells its reporters at the start: the start event and the epochs already done,
    which the JSON-lines reporter sends again as epoch events."""

    history: list[EpochRow]


class StepEvent(TypedDict):
    epoch: int
    step: int  # steps done since the run began
    loss: float
    lr: float


class Result(TypedDict):
    """A run's end: a ``result`` event and result.json. Two epochs are named, each by one word: the
    checkpoint (the epoch with the lowest validation loss, whose weights are kept and tested) and the
    peak (the epoch with the highest validation top-1, earliest on a tie: the figure the report quotes)."""

    test_loss: float  # the checkpoint's, on the test split
    test_top1: float
    test_top5: float
    checkpoint_epoch: int
    checkpoint_valid_loss: float
    checkpoint_valid_top1: float
    checkpoint_valid_top5: float
    peak_epoch: int
    peak_valid_top1: float
    peak_valid_top5: float  # top-5 of the peak epoch, not the highest top-5 of any epoch


class LRRangeResult(TypedDict):
    """The end of an LR range test: its ``step`` events (loss and rate per step, every step) are the curve;
    this says where it stopped and what it found there (``trainer.lr_finder.sweep.analyse``)."""

    steps: int  # steps trained
    stop_step: int | None  # where the stop rule fired; None: the sweep reached its last rate
    stop_reason: str | None
    minimum_lr: float | None  # the rate of the lowest smoothed loss
    minimum_loss: float | None
    steepest_lr: float | None  # the steepest fall of the smoothed loss before its minimum
    suggestion: float | None  # the rate for optim.lr


# An error event's ``fault``: the machine's, not the run's. A write found no space left; the data root
# vanished or became unreadable mid-run (an unmounted share). The worker requeues the run and pauses.
FAULT_NO_SPACE = "no_space"
FAULT_DATA_ROOT = "data_root"
MACHINE_FAULTS = (FAULT_NO_SPACE, FAULT_DATA_ROOT)


def data_root_readable(root: str | Path) -> bool:
    """Whether the data root can be listed: false once a share is unmounted or its folder removed."""
    try:
        os.listdir(root)
    except OSError:
        return False
    return True


class ErrorEvent(TypedDict):
    message: str
    # A fault of the machine, not of the run ("no_space"): the worker requeues the run and pauses.
    fault: NotRequired[str]


START_FIELDS: tuple[str, ...] = tuple(StartEvent.__annotations__)
# The measures of an epoch row beside its key, and the figures of a result, as the database stores them.
EPOCH_FIELDS: tuple[str, ...] = tuple(name for name in EpochRow.__annotations__ if name != "epoch")
RESULT_FIELDS: tuple[str, ...] = tuple(Result.__annotations__)


class MalformedEvent(ValueError):
    """A line that names an event type but whose fields the worker cannot store."""


def event_line(kind: EventType, payload: Mapping[str, object]) -> str:
    return json.dumps({"type": kind, **payload}) + "\n"


def parse_event(line: str) -> dict[str, Any] | None:
    """The event on one line of the trainer's stdout, or None for any other line it printed.

    NaN and Infinity (a diverged loss) become None: the API's JSON cannot carry them. Raises
    MalformedEvent for an object with a ``type`` whose fields do not check out.
    """
    try:
        event = json.loads(line, parse_constant=lambda _constant: None)
    except ValueError:
        return None
    if _well_formed(event):
        return event
    if isinstance(event, dict) and "type" in event:
        raise MalformedEvent(f"a {event['type']!r} event without the fields it needs")
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _well_formed(event: Any) -> bool:
    """The fields the worker relies on: every other field is stored only if it is a finite number."""
    if not isinstance(event, dict):
        return False
    kind = event.get("type")
    if kind == EventType.epoch:
        return _count(event.get("epoch")) and event["epoch"] >= 1
    if kind == EventType.step:
        return _count(event.get("step")) and _count(event.get("epoch"))
    if kind == EventType.start:
        world_size = event.get("world_size", 1)
        return _count(event.get("start_epoch", 0)) and _count(world_size) and world_size >= 1
    return kind in (EventType.result, EventType.lr_range, EventType.error)
