"""A stand-in for ``python -m trainer run RUN_DIR --attempt N`` that needs no torch.

It speaks the trainer's JSON-lines protocol and honours RUN_DIR/ATTEMPT. What it does is chosen
by words in the run's name: "fail" (error event, traceback on stderr, exit 1), "slow" (0.3 s per
epoch), "hang" (start, then sleep until killed), "nan" (a diverged loss and a malformed event),
"peak" (valid top-1 peaks at epoch 2 while the loss keeps falling: the peak is not the checkpoint),
"lr-sensitive" (a learning rate of 0.01 or more learns a third as well: a sweep's poor half).
Each start appends a line to RUN_DIR/invocations. ``--check-cuda N`` answers as the trainer does: it
names N GPUs, or fails with the reason in FAKE_CUDA_PROBLEM.
"""

import json
import os
import sys
import time
from pathlib import Path


def emit(kind: str, **payload) -> None:
    print(json.dumps({"type": kind, **payload}), flush=True)


def check_cuda(processes: int) -> int:
    problem = os.environ.get("FAKE_CUDA_PROBLEM")
    if problem:
        print(f"error: CUDA cannot be used: {problem}", file=sys.stderr)
        return 1
    print(", ".join(f"cuda:{index} Fake GPU" for index in range(processes)))
    return 0


def main() -> int:
    if sys.argv[1] == "--check-cuda":
        return check_cuda(int(sys.argv[2]))
    run_dir = Path(sys.argv[1])
    attempt = sys.argv[sys.argv.index("--attempt") + 1]
    if (run_dir / "ATTEMPT").read_text().strip() != attempt:
        return 3
    config = json.loads((run_dir / "config.json").read_text())
    name, epochs = config["name"], config["epochs"]
    with (run_dir / "invocations").open("a") as log:
        log.write(f"{attempt} {os.getpid()}\n")
    (run_dir / "child.pid").write_text(str(os.getpid()))
    (run_dir / "child.env").write_text(json.dumps({"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}))
    print("fake trainer starting (not JSON: the worker ignores this line)", flush=True)
    emit("start", epochs=epochs, steps_per_epoch=2, start_epoch=0, num_train=8, num_valid=2, num_test=2)
    if "hang" in name:
        time.sleep(600)

    def valid_top1(epoch: int) -> float:
        if "lr-sensitive" in name:  # a sweep's runs: a learning rate of 0.01 or more learns a third as well
            lr = config["optim"]["lr"]
            return 9.0 * epoch * (1.0 if lr < 0.01 else 0.3) + lr
        return 18.0 - (epoch - 2) if "peak" in name and epoch > 2 else 9.0 * epoch

    for epoch in range(1, epochs + 1):
        if "slow" in name:
            time.sleep(0.3)
        emit("step", epoch=epoch, step=2 * epoch, loss=1.0 / epoch, lr=0.1)
        if "nan" in name:
            emit("epoch", epoch="one")
        emit(
            "epoch",
            epoch=epoch,
            train_loss=float("nan") if "nan" in name else 1.0 / epoch,
            train_top1=10.0 * epoch,
            train_top5=20.0 * epoch,
            valid_loss=1.5 / epoch,
            valid_top1=valid_top1(epoch),
            valid_top5=19.0 * epoch,
            lr=0.1,
            seconds=0.01,
            images_per_s=800.0,
        )
        if "fail" in name:
            print("Traceback (most recent call last):\nRuntimeError: fake failure", file=sys.stderr)
            emit("error", message="RuntimeError: fake failure")
            return 1
    emit(
        "result",
        test_top1=42.0,
        test_top5=84.0,
        checkpoint_epoch=epochs,  # the valid loss falls every epoch
        checkpoint_valid_top1=valid_top1(epochs),
        checkpoint_valid_top5=19.0 * epochs,
        peak_epoch=(peak := max(range(1, epochs + 1), key=lambda epoch: (valid_top1(epoch), -epoch))),
        peak_valid_top1=valid_top1(peak),
        peak_valid_top5=19.0 * peak,
        test_loss=0.5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
