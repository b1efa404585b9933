"""Make docs/compare.png, the README's picture of the compare page, from real runs.

It serves the dashboard on a generated dataset in a temporary folder, launches a study of the
report's base run, +cosine, +label smoothing and both, shrunk to a CPU-sized ResNet18, over 3 seeds
(12 runs), trains them, and photographs the study's "Compare runs" page in Chromium at 1280 px.
Some minutes on a CPU:

    .venv/bin/python scripts/screenshot_compare.py [--out docs/compare.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' `tricklab serve` with its client, and their Chromium

from playwright.sync_api import sync_playwright  # noqa: E402
from testlib.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from testlib.dashboard import serve  # noqa: E402

from trainer.data.demo import write_demo_dataset  # noqa: E402

SWITCHES = {"cosine": True, "label_smoothing": [0, 0.1]}
SEEDS = 3
# The report's runs made CPU-sized.
SIZE = {"model.arch": "resnet18", "model.pretrained": False, "epochs": 6, "batch_size": 32, "data.image_size": 48}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "compare.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tricklab-shot-") as folder:
        home = Path(folder)
        write_demo_dataset(home / "data", classes=8, per_class=30, size=64)
        with serve(home, home / "data") as dashboard:
            client = dashboard.client
            overrides = {**SIZE, "data.root": str(home / "data")}
            study = client.create_study("seed study on CPU", grid=SWITCHES, seeds=SEEDS, overrides=overrides)
            print(f"queued study #{study.id}: {study.progress['total']} runs", flush=True)
            study = client.wait_for_study(study.id, timeout=7200)
            print(f"study #{study.id}: {study.progress}", flush=True)
            traces = len(study.run_ids) + 4  # a line per run and the four configurations' means
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                # The study page's own link: its runs, against the study's baseline run.
                page.goto(f"{dashboard.url}/studies/{study.id}")
                page.locator("#study-table tbody tr").first.wait_for()
                page.locator("#study-compare").click()
                page.wait_for_function(f"() => document.getElementById('chart-lr').data?.length === {traces}")
                page.locator("#legend .legend-entry").first.wait_for()
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=args.out, full_page=True)
                browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
