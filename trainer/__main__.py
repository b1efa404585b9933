"""``python -m trainer run RUN_DIR [--attempt N]``: the entry the worker spawns; ``python -m trainer
launch ...``: torchrun, which starts that entry once per process."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["launch"]:
        # The launcher runs no training: it skips the trainer's imports (torchvision, the data pipeline).
        from trainer.parallel.launch import launch_main

        raise SystemExit(launch_main(sys.argv[2:]))
    from trainer.cli import run_main

    raise SystemExit(run_main())
