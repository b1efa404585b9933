"""Whether pruning pays: the same sweep with successive halving and without pruning, trained for real on
the tests' small dataset by ``tricklab serve`` (its sweep controller and one worker): the epochs each
trained, and whether both name the same best configuration.

The space is a grid of learning rates of which half are poor for Adam (0.03 and above); both sweeps try
every cell, one at a time, in the same order (the grid's seed), so that halving compares each trial with
the ones before it.

    python -m bench.sweep_pruning             # 8 learning rates x 4 epochs
    python -m bench.sweep_pruning --smoke     # 4 learning rates x 2 epochs
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from backend.settings import Settings
from bench.common import print_result
from trainer.data.demo import write_demo_dataset
from tricklab import Client
from tricklab.local import serving, tricklab_serve

GOOD = [1e-4, 3e-4, 1e-3, 3e-3]
POOR = [3e-2, 1e-1, 3e-1, 1.0]


def _sweep(client: Client, data_root: Path, *, values: list[float], epochs: int, pruner: dict[str, Any]) -> Any:
    sweep = client.create_sweep(
        f"lr, {pruner['name']}",
        space={"optim.lr": {"type": "choice", "values": values}},
        base={
            "data.root": str(data_root),
            "model.arch": "test_resnet",
            "model.pretrained": False,
            "data.image_size": 32,
            "data.num_workers": 0,
            "batch_size": 16,
            "epochs": epochs,
            "schedule.name": "constant",
        },
        sampler={"name": "grid", "seed": 0},
        pruner=pruner,
        budget={"trials": len(values), "parallel": 1},
    )
    return client.wait_for_sweep(sweep.id, timeout=3600, interval=1.0)


def _epochs_trained(client: Client, sweep: Any) -> int:
    return sum(client.get_run(run.run_id).epoch for trial in sweep.trials for run in trial.runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="4 learning rates x 2 epochs")
    args = parser.parse_args()
    values = GOOD[1:3] + POOR[1:3] if args.smoke else GOOD + POOR
    epochs = 2 if args.smoke else args.epochs
    home = Path(tempfile.mkdtemp(prefix="sweep-pruning-"))
    write_demo_dataset(home / "data", classes=4, per_class=12, size=40, seed=0)
    settings = Settings(
        database_url=f"sqlite:///{home / 'tricklab.db'}",
        runs_dir=home / "runs",
        data_roots=[home / "data"],
        poll_seconds=0.3,
        sweep_poll_seconds=0.3,
    )
    env = {**os.environ, **settings.environ()}
    figures: dict[str, Any] = {}
    command = tricklab_serve("--workers", "1")
    with (
        serving(cwd=home, env=env, log=home / "server.log", command=command, timeout=120) as server,
        Client(server.url) as client,
    ):
        best = {}
        for name, pruner in (
            ("none", {"name": "none"}),
            ("halving", {"name": "halving", "min_resource": 1, "reduction_factor": 2}),
        ):
            sweep = _sweep(client, home / "data", values=values, epochs=epochs, pruner=pruner)
            trained = _epochs_trained(client, sweep)
            best[name] = next(t.params["optim.lr"] for t in sweep.trials if t.number == sweep.best)
            pruned = sum(t.state == "pruned" for t in sweep.trials)
            print(
                f"{name}: {trained} of {len(values) * epochs} epochs trained, {pruned} trials pruned, "
                f"best lr {best[name]}",
                flush=True,
            )
            figures[f"{name}_epochs"] = trained
            figures[f"{name}_best_lr"] = best[name]
    figures["epochs_ratio"] = figures["halving_epochs"] / figures["none_epochs"]
    figures["same_best"] = int(best["none"] == best["halving"])
    print_result(**figures)


if __name__ == "__main__":
    main()
