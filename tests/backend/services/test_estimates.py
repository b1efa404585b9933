"""Study estimates: from the throughput the workers measured on finished runs (rows written through
the worker's own services, not by training), on the device that will run them; else rough, from
each model's forward GFLOPs in the table, which the server reads without building a model, and
labelled so; a model outside it gets no figure, and the basis says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from backend.models import utcnow
from backend.services import queue, runs, workers
from backend.services.estimates import GFLOPS, START_SECONDS, estimate_runs, rough_epoch_seconds
from trainer.config import RunConfig
from trainer.models.build import build_model


def counted_gflops(arch: str) -> float:
    model = build_model(arch, 1000, pretrained=False).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224))
    return counter.get_total_flops() / 2e9  # multiply-adds, as the table counts them


@pytest.mark.parametrize("arch", ["resnet18", "resnet50d"])
def test_the_tables_figure_is_what_counting_the_model_gives(arch):
    # The table's ResNet-D rows were counted so; counting torchvision's resnet18 checks the method.
    assert counted_gflops(arch) == pytest.approx(GFLOPS[arch], rel=0.01)


def test_a_model_outside_the_table_gets_no_rough_figure_and_the_basis_names_it(store):
    unknown = RunConfig.from_dict({"model": {"arch": "resnet10t", "pretrained": False}, "epochs": 2})
    known = RunConfig.from_dict({"model": {"arch": "resnet18", "pretrained": False}, "epochs": 2})
    assert "resnet10t" not in GFLOPS
    assert rough_epoch_seconds(unknown, n_train=100, device="cpu", teacher_arch=None) is None
    assert rough_epoch_seconds(known, n_train=100, device="cpu", teacher_arch="resnet10t") is None
    with store.db.session() as session:
        both = estimate_runs(
            session=session, configs=[(known, None), (unknown, None)], n_train=100, device="cpu", parallel=1
        )
        alone = estimate_runs(session=session, configs=[(unknown, None)], n_train=100, device="cpu", parallel=1)
    epoch = rough_epoch_seconds(known, n_train=100, device="cpu", teacher_arch=None)
    assert epoch is not None and both.seconds == pytest.approx(START_SECONDS["cpu"] + 2 * epoch)
    assert (both.untimed, alone.untimed, alone.seconds) == (1, 1, 0.0)
    missing = (
        "no figure for resnet10t: nothing measured of its size and no FLOPs entry; it will be timed after its "
        "first epoch"
    )
    assert (
        both.basis == f"rough: from the FLOPs table, nothing measured yet on the CPU; 1 of 2 runs left out, {missing}"
    )
    assert (both.source, alone.source) == ("rough", "none")
    assert alone.basis == missing


SMALL_CPU = "2 CPU cores"
BIG_CPU = "64 CPU cores"


def config_of(**changes):
    return RunConfig.from_dict(
        {"model": {"arch": "resnet18", "pretrained": False}, "data": {"image_size": 64}, **changes}
    )


def finish_measured(store, *, worker, device_name, images_per_s, wall_seconds, epochs=2, images=100, **changes):
    """A run trained by ``worker`` (a CPU named ``device_name``) as the worker records it: claimed
    ``wall_seconds`` ago, its epochs at ``images_per_s`` over ``images`` training images, succeeded now."""
    cpu = [{"device": "cpu", "kind": "cpu", "name": device_name, "memory_gib": None}]
    config = config_of(epochs=epochs, **changes).model_dump(mode="json")
    config["data"]["root"] = str(store.data_root)
    with store.db.session(write=True) as session:
        workers.report_worker(session=session, name=worker, devices=cpu, started_at=utcnow())
        run = runs.create_run(session=session, settings=store.settings, config=config)
        claim = queue.claim_run(
            session=session, worker=worker, stale_after_seconds=3600, now=utcnow() - timedelta(seconds=wall_seconds)
        )
        assert claim is not None and claim.run_id == run.id
        for epoch in range(1, epochs + 1):
            row = {"epoch": epoch, "seconds": images / images_per_s, "images_per_s": images_per_s}
            assert queue.store_epoch(session=session, run_id=run.id, attempt=claim.attempt, row=row)
        assert queue.succeed(session=session, run_id=run.id, attempt=claim.attempt, result={})


def test_the_estimate_follows_the_throughput_measured_on_the_device_that_will_run_it(make_store, database_url):
    store = make_store(database_url)
    # Three runs on the small CPU: 40 images/s over their training passes (2 x 25 s), 100 s from start
    # to end, so as much time again went to start-up and evaluation.
    for index in range(3):
        finish_measured(
            store, worker=f"small:{index}", device_name=SMALL_CPU, images_per_s=40.0, images=1000, wall_seconds=100.0
        )
    # A faster machine's run of the same size, and a run of another size on the small one.
    finish_measured(store, worker="big:1", device_name=BIG_CPU, images_per_s=400.0, images=10_000, wall_seconds=100.0)
    finish_measured(
        store, worker="small:9", device_name=SMALL_CPU, images_per_s=10.0, wall_seconds=40.0, data={"image_size": 128}
    )
    new = config_of(epochs=4)

    def estimate(names, config=new):
        with store.db.session() as session:
            return estimate_runs(
                session=session, configs=[(config, None)], n_train=200, device="cpu", parallel=1, device_names=names
            )

    small = estimate({SMALL_CPU})
    # 4 epochs x 200 images / 40 images/s x 2 (the wall time over the training time measured).
    assert small.seconds == pytest.approx(4 * 200 / 40 * 2, rel=0.01)
    assert (small.source, small.from_history) == ("measured", 1)
    assert small.basis == "from 3 finished resnet18 runs at 64 px (40 img/s) on 2 CPU cores"
    big = estimate({BIG_CPU})
    assert big.seconds == pytest.approx(4 * 200 / 400 * 2, rel=0.01)
    assert big.basis == "from 1 finished resnet18 run at 64 px (400 img/s) on 64 CPU cores"
    # Nothing measured at this size on the small CPU: rough, from the FLOPs table, and labelled so.
    other = config_of(epochs=4, data={"image_size": 96})
    rough = estimate({SMALL_CPU}, other)
    epoch = rough_epoch_seconds(other, n_train=200, device="cpu", teacher_arch=None)
    assert epoch is not None and rough.seconds == pytest.approx(START_SECONDS["cpu"] + 4 * epoch)
    assert (rough.source, rough.basis) == ("rough", "rough: from the FLOPs table, nothing measured yet on 2 CPU cores")
    with store.db.session() as session:
        mixed = estimate_runs(
            session=session,
            configs=[(new, None), (other, None)],
            n_train=200,
            device="cpu",
            parallel=1,
            device_names={SMALL_CPU},
        )
    assert mixed.seconds == pytest.approx(small.seconds + rough.seconds, rel=0.01)
    assert mixed.source == "mixed"
    assert mixed.basis == (
        "1 of 2 runs from 3 finished resnet18 runs at 64 px (40 img/s) on 2 CPU cores; the other 1 rough: from the "
        "FLOPs table, nothing measured yet for their size"
    )
