"""The GPU memory a run's training step takes at its peak, estimated before launch, and the warning when
no living worker's GPUs hold it. Torch-free: the figures come from the trainer's footprint table.

A worker trains each run over every GPU it owns, ``batch_size / g`` images on each of its g GPUs. Per GPU:

    peak    = (1 + ALLOCATOR_SLACK) * (model + batch) + CUDA_CONTEXT
    model   = 4P weights + 4P gradients + 4Ps optimizer state (s: Adam 2, SGD with momentum 1)
              + 2P under runtime.amp (autocast's bf16 copies of the weights)
              + 4P over several GPUs (DDP's gradient buckets)
              + 4T for a distillation teacher (frozen: no copies of its own)
    batch   = b * (image_size / 224)^2 * (A + 2L + 2Lt)

P and T are the student's and the teacher's parameters, b the images per GPU, A the activations one
224 px image leaves saved for backward (A under bf16 autocast with runtime.amp), L and Lt the largest
single activation of the student and the teacher: two gradient buffers of that size live at once in
backward, and the teacher's forward pass, run while the student's activations are held, keeps about two
of its own. P, T, A and L are measured (``trainer.models.footprint``: on the CPU, where autocast keeps
the same bf16 tensors as on CUDA); CUDA_CONTEXT (the CUDA context and cuDNN's and cuBLAS's workspaces)
and ALLOCATOR_SLACK (the caching allocator's fragmentation) are assumed, not measured on a GPU here. The
step is the eager one: runtime.compile usually keeps less. Not counted: the decoded image cache, which
goes to host memory when the GPU lacks room for it. The figure is approximate, and the warning says
"about"; an arch outside the table gets no figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from backend.models import Run
from backend.schemas.workers import WorkerPublic
from trainer.config import RunConfig
from trainer.models.footprint import OPTIMIZER_STATES, Footprint, footprint, size_scale

GIB = 2**30
CUDA_CONTEXT = 1 * GIB
ALLOCATOR_SLACK = 0.10
BASIS = (
    "approximate: weights, gradients and optimizer state from the parameter count, and the activations "
    "saved for backward as measured for {arch} on the CPU, scaled to {size} px; CUDA's own overhead assumed "
    "(1 GiB and 10 %)"
)


@dataclass(frozen=True)
class MemoryCheck:
    gib: float  # the step's peak per GPU, on the live worker that fits it best (one GPU when none is alive)
    gpus: int  # the GPUs that figure splits the batch over
    largest_gpu_gib: float | None  # the largest GPU memory of the living workers; None without a GPU worker
    basis: str
    warning: str | None  # when no living worker's GPUs hold the step


def step_peak(config: RunConfig, *, gpus: int = 1, teacher_arch: str | None = None) -> int | None:
    """Bytes of GPU memory one training step of ``config`` takes at its peak on each of ``gpus``
    GPUs; None when the arch (or the teacher's) is not in the footprint table."""
    fixed, per_image = _terms(config, gpus=gpus, teacher_arch=teacher_arch)
    if fixed is None or per_image is None:
        return None
    images = -(-config.batch_size // gpus)
    return round((1 + ALLOCATOR_SLACK) * (fixed + images * per_image) + CUDA_CONTEXT)


def _terms(config: RunConfig, *, gpus: int, teacher_arch: str | None) -> tuple[float | None, float | None]:
    """(bytes that do not grow with the batch, bytes per image on one GPU)."""
    student = footprint(config.model.arch)
    teacher = footprint(teacher_arch) if teacher_arch else None
    if student is None or (teacher_arch and teacher is None):
        return None, None
    amp = config.runtime.amp
    states = OPTIMIZER_STATES[config.optim.name] if config.optim.name == "adam" or config.optim.momentum else 0
    copies = 2 + states + (0.5 if amp else 0) + (1 if gpus > 1 else 0)
    # A frozen teacher's weights are cast per use under autocast, not kept: its weights alone stay.
    fixed = 4 * student.params * copies + (4 * teacher.params if teacher else 0)
    transients = 2 * _largest(student, amp=amp) + (2 * _largest(teacher, amp=amp) if teacher else 0)
    saved = student.activations_amp if amp else student.activations
    return fixed, size_scale(config.data.image_size) * (saved + transients)


def _largest(model: Footprint, *, amp: bool) -> float:
    return model.largest * (model.activations_amp / model.activations if amp else 1)


def largest_batch(config: RunConfig, *, gpus: int, memory: float, teacher_arch: str | None = None) -> int:
    """The largest ``batch_size`` whose step fits ``memory`` bytes on each of ``gpus`` GPUs (0: none)."""
    fixed, per_image = _terms(config, gpus=gpus, teacher_arch=teacher_arch)
    if fixed is None or per_image is None:
        return 0
    images = ((memory - CUDA_CONTEXT) / (1 + ALLOCATOR_SLACK) - fixed) // per_image
    return max(int(images), 0) * gpus


def check_memory(
    config: RunConfig, *, workers: Sequence[WorkerPublic], teacher_arch: str | None = None
) -> MemoryCheck | None:
    """The step's peak on the living GPU workers, and a warning when none of them holds it; None when
    the arch has no footprint."""
    alone = step_peak(config, teacher_arch=teacher_arch)
    if alone is None:
        return None
    basis = BASIS.format(arch=config.model.arch, size=config.data.image_size)
    fleet: list[tuple[int, float]] = []  # (GPUs, the smallest one's bytes) of each living GPU worker
    for worker in workers:
        known = [device.memory_gib for device in worker.devices if device.kind == "cuda" and device.memory_gib]
        if worker.alive and known and len(known) == len(worker.devices):
            fleet.append((len(known), min(known) * GIB))
    if not fleet:
        return MemoryCheck(round(alone / GIB, 1), 1, None, basis, None)
    # The worker with the most room to spare, or the least lacking.
    peak, gpus, room = min(
        ((step_peak(config, gpus=gpus, teacher_arch=teacher_arch) or alone, gpus, room) for gpus, room in fleet),
        key=lambda found: found[0] / found[2],
    )
    largest = max(room for _, room in fleet)
    warning = None if peak <= room else _warning(config, peak=peak, gpus=gpus, memory=room, teacher_arch=teacher_arch)
    return MemoryCheck(round(peak / GIB, 1), gpus, round(largest / GIB, 1), basis, warning)


def teacher_arch(session: Session, config: RunConfig) -> str | None:
    """The arch of the run ``config`` distils from, where it names one by id (a folder is not read)."""
    teacher = config.tricks.kd.teacher
    run = session.get(Run, teacher) if isinstance(teacher, int) else None
    return str(run.config["model"]["arch"]) if run is not None else None


def _warning(config: RunConfig, *, peak: int, gpus: int, memory: float, teacher_arch: str | None) -> str:
    """ "resnet50 at batch_size 256, 224 px, fp32 needs about 23.4 GiB of GPU memory; ... lower batch_size ..." """
    batch = f"batch_size {config.batch_size}"
    if gpus > 1:
        batch += f" ({-(-config.batch_size // gpus)} per GPU over {gpus} GPUs)"
    precision = "bf16 autocast" if config.runtime.amp else "fp32"
    each = " per GPU" if gpus > 1 else ""
    room = (
        f"the live workers' GPUs have {_gib(memory)}"
        if gpus > 1
        else f"the largest GPU of the live workers has {_gib(memory)}"
    )
    changes = []
    fits = largest_batch(config, gpus=gpus, memory=memory, teacher_arch=teacher_arch)
    if fits:
        changes.append(f"lower batch_size to {fits} or less")
    if not config.runtime.amp:
        with_amp = config.model_copy(update={"runtime": config.runtime.model_copy(update={"amp": True})})
        amp_peak = step_peak(with_amp, gpus=gpus, teacher_arch=teacher_arch)
        changes.append(f"turn runtime.amp on (about {_gib(amp_peak or 0)}{each})")
    if not fits:
        changes.append("choose a smaller model or data.image_size")
    return (
        f"{config.model.arch}{f' distilling from {teacher_arch}' if teacher_arch else ''} at {batch}, "
        f"{config.data.image_size} px, {precision} is estimated to need about "
        f"{_gib(peak)} of GPU memory{each} for a training step; {room}: {', or '.join(changes)}"
    )


def _gib(count: float) -> str:
    return f"{count / GIB:.1f} GiB"
