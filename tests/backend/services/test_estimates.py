"""The rough epoch time's arithmetic: each model's forward GFLOPs from the table, which the server
reads without building a model; a model outside it gets no rough figure, and the basis says so."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

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
        "no rough figure for resnet10t: no earlier run of its size and no FLOPs entry; it will be timed after its "
        "first epoch"
    )
    assert both.basis == f"a rough figure from each model's arithmetic on the CPU; 1 of 2 runs left out, {missing}"
    assert alone.basis == missing
