"""`tricklab data ...`: write the demo dataset, fetch CUB-200-2011, check a dataset folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from trainer.data.cub import DatasetError, dataset_report
from trainer.data.demo import MAX_CLASSES, write_demo_dataset
from trainer.data.fetch import CUB_MD5, CUB_URL, fetch_cub


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, got {value}")
        return value

    return parse


def _reporting_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a DatasetError into its message on stderr and exit code 1, without a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except DatasetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


def _demo(args: argparse.Namespace) -> int:
    root = write_demo_dataset(args.dir, classes=args.classes, per_class=args.per_class, size=args.size, seed=args.seed)
    print(f"wrote {args.classes} classes x {args.per_class} images to {root}")
    print(f"train on it with data.root={args.dir}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    root = fetch_cub(args.dir, url=args.url, md5=args.md5)
    print(f"CUB-200-2011 is ready at {root} (the archive stays beside it; delete it to free 1.1 GB)")
    print(f"train on it with data.root={args.dir}")
    return 0


def _check(args: argparse.Namespace) -> int:
    print(dataset_report(args.dir))
    return 0


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="get and check the CUB-200-2011 dataset (or a generated demo)")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="{demo,fetch-cub,check}")

    demo = commands.add_parser("demo", help="write a small generated dataset in CUB-200-2011's layout")
    demo.add_argument("dir", help="folder to create CUB_200_2011/ in")
    demo.add_argument("--classes", type=_int_in(1, MAX_CLASSES), default=10, help="number of classes (default 10)")
    demo.add_argument("--per-class", type=_int_in(2), default=40, help="images per class (default 40)")
    demo.add_argument("--size", type=_int_in(16, 2048), default=96, help="short side in pixels (default 96)")
    demo.add_argument("--seed", type=_int_in(0), default=0, help="random seed (default 0)")
    demo.set_defaults(handler=_reporting_errors(_demo))

    fetch = commands.add_parser("fetch-cub", help="download, verify and extract CUB-200-2011 (1.1 GB)")
    fetch.add_argument("dir", help="folder to put CUB_200_2011.tgz and CUB_200_2011/ in")
    fetch.add_argument("--url", default=CUB_URL, help="where to download from; file:///path for an archive at hand")
    fetch.add_argument("--md5", default=CUB_MD5, help="expected md5 of the archive")
    fetch.set_defaults(handler=_reporting_errors(_fetch))

    check = commands.add_parser("check", help="check a dataset folder and print its splits")
    check.add_argument("dir", help="a folder holding CUB_200_2011/, or that folder itself")
    check.set_defaults(handler=_reporting_errors(_check))
