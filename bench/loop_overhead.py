"""tricklab's training loop against a plain 20-line PyTorch loop: same model, batches and schedule.

The plain loop is what anyone would write: forward, cross-entropy, backward, Adam step, PyTorch's
OneCycleLR. tricklab's ``train_one_epoch`` adds what a run needs (the trick-aware loss, per-step
schedule, top-1/top-5 kept on the device, the step callback); target ``ratio`` <= 1.05. Batches
come from memory, the two loops alternate, and the ratio is the median over rounds of
back-to-back pairs. tricklab's loop measures where its time goes as every run does (``trainer.loop.telemetry``:
the data-wait marks, peak memory, NVML on CUDA), so the ratio includes that cost; ``telemetry_share``
is that measurement alone, around batches that cost nothing, over the tricklab epoch's time (target
< 1 %). On a GPU epochs are timed in wall seconds; on a CPU in CPU seconds of one
thread (see ``loop_timer``).

    python -m bench.loop_overhead            # resnet18, 64 px, batch 32
    python -m bench.loop_overhead --smoke
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from bench.common import add_loop_arguments, alternate, paired_ratio, print_result
from bench.training import RepeatedBatch, Trainer, loop_device
from trainer.loop.telemetry import PassTelemetry


def plain_epoch(model, batches, optimizer, *, autocast: bool) -> None:
    """The baseline: the loop of the PyTorch tutorials, with the same OneCycle schedule."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[group["peak_lr"] for group in optimizer.param_groups], total_steps=len(batches)
    )
    model.train()
    for images, targets in batches:
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(images).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def telemetry_passes(device: torch.device, steps: int, repeats: int) -> None:
    """What ``train_one_epoch`` adds to measure a pass of ``steps`` steps, with nothing to measure,
    ``repeats`` times: one pass of a few steps is below the timer's resolution."""
    for _ in range(repeats):
        telemetry = PassTelemetry(device)
        for _ in telemetry.timed(range(steps)):
            pass
        telemetry.figures()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="resnet18")
    add_loop_arguments(parser, rounds=6)
    args = parser.parse_args(argv)
    if args.smoke:
        args.image_size, args.batch_size, args.steps, args.rounds = 32, 4, 1, 1
    device, timed = loop_device()
    print(
        f"{args.arch}, {args.image_size} px, batch {args.batch_size}, {args.steps} steps per epoch, "
        f"{args.rounds} rounds"
    )

    batches = RepeatedBatch(
        batch_size=args.batch_size, image_size=args.image_size, num_classes=200, steps=args.steps, device=device
    )
    # One model and optimizer for both loops: the same weights' shapes, the same optimizer state size.
    trainer = Trainer(args.arch, 200, device)
    images = batches.images.contiguous(memory_format=torch.channels_last) if trainer.on_cuda else batches.images
    plain_batches = [(images, batches.targets)] * args.steps

    def plain() -> float:
        return timed(lambda: plain_epoch(trainer.model, plain_batches, trainer.optimizer, autocast=trainer.on_cuda))

    def tricklab() -> float:
        return timed(lambda: trainer.epoch(batches))

    plain()  # warm-up
    tricklab()
    seconds = alternate({"tricklab": tricklab, "plain": plain}, args.rounds)
    ratio = paired_ratio(seconds["tricklab"], seconds["plain"])
    repeats = 100
    telemetry_seconds = timed(lambda: telemetry_passes(device, args.steps, repeats)) / repeats
    telemetry_share = telemetry_seconds / min(seconds["tricklab"])
    print(f"tricklab loop / plain loop: {ratio:.3f}")
    print(f"measuring where the time goes: {telemetry_seconds * 1e6:.0f} us per epoch, {telemetry_share:.4%} of it")
    print_result(ratio=ratio, telemetry_share=telemetry_share)


if __name__ == "__main__":
    main()
