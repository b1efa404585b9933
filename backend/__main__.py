"""``python -m backend ...``: the ``tricklab`` command without the console script."""

from backend.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
