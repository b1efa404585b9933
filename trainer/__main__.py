"""``python -m trainer run RUN_DIR [--attempt N]``: the entry the worker spawns; ``python -m trainer
launch ...``: torchrun, which starts that entry once per process."""

from trainer.cli import run_main

if __name__ == "__main__":
    raise SystemExit(run_main())
