"""Train three tiny runs on both pipelines and print one digest line per run, to check a refactor.

A run's digest covers its epoch rows (timing fields left out), its result.json and a hash of its
final weights. Run it on the tree before a change and after: equal lines mean the change left
training bit for bit as it was. It goes through the CLI only (``tricklab data demo``, ``tricklab
train``), so it runs unchanged on any layout of the code.

    .venv/bin/python scripts/run_digest.py /tmp/digest-before > before.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

# What differs between two identical runs: wall-clock figures and the machine's memory and utilization.
TIMING_FIELDS = {"seconds", "images_per_s", "data_wait_share", "peak_memory_bytes", "gpu_utilization"}
BASE = {
    "epochs": 2,
    "batch_size": 8,
    "seed": 7,
    "model": {"arch": "resnet18", "pretrained": False},
    "runtime": {"device": "cpu"},
}
RUNS = {
    "plain": {},
    "mixup-ls": {"tricks": {"mixup_alpha": 0.2, "label_smoothing": 0.1}},
    "kd-mixup": {"tricks": {"mixup_alpha": 0.2, "kd": {"alpha": 0.5, "temperature": 4.0}}},
}


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged.get(key, {}), value) if isinstance(value, dict) else value
    return merged


def _train(folder: Path, config: dict) -> None:
    config_file = folder.with_suffix(".json")
    config_file.write_text(json.dumps(config))
    command = [sys.executable, "-m", "backend", "train", str(config_file), "--out", str(folder)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _digest(folder: Path) -> str:
    import torch

    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    kept = [{key: value for key, value in row.items() if key not in TIMING_FIELDS} for row in rows]
    result = json.loads((folder / "result.json").read_text())
    state = torch.load(folder / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    weights = hashlib.sha256()
    for name in sorted(state):
        weights.update(name.encode())
        weights.update(state[name].cpu().contiguous().numpy().tobytes())
    summary = json.dumps({"epochs": kept, "result": result}, sort_keys=True)
    return f"{hashlib.sha256(summary.encode()).hexdigest()[:16]} weights {weights.hexdigest()[:16]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path, help="an empty or missing folder for the dataset and the runs")
    args = parser.parse_args()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    if not data.exists():
        demo = [sys.executable, "-m", "backend", "data", "demo", str(data), "--classes", "4", "--per-class", "12"]
        subprocess.run([*demo, "--size", "40"], check=True, stdout=subprocess.DEVNULL)
    for pipeline in ("fast", "reference"):
        base = _merge(BASE, {"data": {"root": str(data), "image_size": 32, "pipeline": pipeline, "num_workers": 0}})
        teacher = workdir / f"teacher-{pipeline}"
        _train(teacher, _merge(base, {"name": "teacher"}))
        for name, extra in RUNS.items():
            config = _merge(base, {"name": name, **extra})
            if name.startswith("kd"):
                config["tricks"]["kd"]["teacher"] = str(teacher)
            folder = workdir / f"{name}-{pipeline}"
            _train(folder, config)
            print(f"{name:9} {pipeline:9} {_digest(folder)}", flush=True)


if __name__ == "__main__":
    main()
