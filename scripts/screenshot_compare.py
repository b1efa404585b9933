"""Make docs/compare.png, the README's picture of the compare page, from real runs.

It serves the dashboard on a generated dataset in a temporary folder, trains the report's base run
and three of its tricks (cosine, label smoothing, mixup alpha 0.2), shrunk to a CPU-sized ResNet18,
and photographs /compare in Chromium at 1280 px. A few minutes on a CPU:

    .venv/bin/python scripts/screenshot_compare.py [--out docs/compare.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' launcher of `tricklab serve` and their Chromium

from playwright.sync_api import sync_playwright  # noqa: E402
from testlib.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testlib.dashboard import serve  # noqa: E402

from trainer.config import apply_overrides  # noqa: E402
from trainer.data.demo import write_demo_dataset  # noqa: E402
from trainer.presets import get_preset  # noqa: E402

PRESETS = ("base", "a", "b", "d2")
# The report's runs made CPU-sized; each preset's own overrides are applied on top.
SIZE = {"model.arch": "resnet18", "model.pretrained": False, "epochs": 6, "batch_size": 32, "data.image_size": 48}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "compare.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tricklab-shot-") as folder:
        home = Path(folder)
        write_demo_dataset(home / "data", classes=8, per_class=30, size=64)
        with serve(home, home / "data") as dashboard:
            ids = []
            for key in PRESETS:
                preset = get_preset(key)
                ids.append(dashboard.submit(preset.key, **apply_overrides({}, {**preset.overrides, **SIZE}))["id"])
                print(f"queued #{ids[-1]} {preset.title}", flush=True)
            for run_id in ids:
                run = dashboard.wait(run_id, timeout=1800)
                print(f"#{run_id} {run['status']}", flush=True)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{dashboard.url}/compare?runs={','.join(map(str, ids))}")
                page.wait_for_function(f"() => document.getElementById('chart-lr').data?.length === {len(ids)}")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out, full_page=True)
                browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
