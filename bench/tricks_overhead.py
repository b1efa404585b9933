"""What mixup and distillation add to an epoch, on the same model and batches.

Mixup pairs each image with another of the same batch (a permutation), so it should cost one blend
and a second loss term: target ``mixup_ratio`` <= 1.05 (the report's second DataLoader: 1.92).
Distillation should cost the teacher's forward pass and no more: ``kd_extra_vs_teacher`` is the
extra epoch time with a teacher over the time of that teacher's forward passes alone (1.0 = nothing
beyond the teacher). Batches come from memory, so the ratios are the loop's own, undiluted by data
loading; variants alternate, and each ratio is the median over rounds of back-to-back pairs. On a
GPU epochs are timed in wall seconds; on a CPU in CPU seconds of one thread (see ``loop_timer``).

    python -m bench.tricks_overhead            # resnet18 student, resnet50 teacher, 64 px
    python -m bench.tricks_overhead --smoke
"""

from __future__ import annotations

import argparse

import torch

from bench.common import add_loop_arguments, alternate, paired_ratio, print_result
from bench.training import RepeatedBatch, Trainer, loop_device
from trainer.config import TricksConfig
from trainer.models.build import build_model
from trainer.tricks.recipe import Tricks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--teacher", default="resnet50")
    parser.add_argument("--mixup-alpha", type=float, default=0.2)
    add_loop_arguments(parser, rounds=5)
    args = parser.parse_args(argv)
    if args.smoke:
        args.teacher, args.image_size, args.batch_size, args.steps, args.rounds = "resnet18", 32, 4, 1, 1
    device, timed = loop_device()
    print(
        f"student {args.student}, teacher {args.teacher}, {args.image_size} px, batch {args.batch_size}, "
        f"{args.steps} steps per epoch, {args.rounds} rounds"
    )

    num_classes = 200
    batches = RepeatedBatch(
        batch_size=args.batch_size, image_size=args.image_size, num_classes=num_classes, steps=args.steps, device=device
    )
    trainer = Trainer(args.student, num_classes, device)
    teacher = build_model(args.teacher, num_classes, pretrained=False).to(device).eval()
    if trainer.on_cuda:
        teacher = teacher.to(memory_format=torch.channels_last)

    @torch.no_grad()  # as the loop runs the teacher
    def teacher_forward() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=trainer.on_cuda):
            for images, _ in batches:
                teacher(images)

    mixup = Tricks(TricksConfig(mixup_alpha=args.mixup_alpha), seed=0)
    distillation = Tricks(TricksConfig(), seed=0, teacher=teacher)

    def epoch_seconds(tricks: Tricks | None = None) -> float:
        return timed(lambda: trainer.epoch(batches, tricks))

    trainer.epoch(batches)  # warm-up
    teacher_forward()
    seconds = alternate(
        {
            "plain": epoch_seconds,
            "mixup": lambda: epoch_seconds(mixup),
            "kd": lambda: epoch_seconds(distillation),
            "teacher_forward": lambda: timed(teacher_forward),
        },
        args.rounds,
    )
    mixup_ratio = paired_ratio(seconds["mixup"], seconds["plain"])
    kd_extra = [kd - plain for kd, plain in zip(seconds["kd"], seconds["plain"], strict=True)]
    kd_vs_teacher = paired_ratio(kd_extra, seconds["teacher_forward"])
    kd_ratio = paired_ratio(seconds["kd"], seconds["plain"])
    print(f"mixup (alpha {args.mixup_alpha}) / plain epoch: {mixup_ratio:.3f}")
    print(f"kd / plain epoch: {kd_ratio:.3f}; kd's extra time / teacher forward time: {kd_vs_teacher:.3f}")
    print_result(mixup_ratio=mixup_ratio, kd_ratio=kd_ratio, kd_extra_vs_teacher=kd_vs_teacher)


if __name__ == "__main__":
    main()
