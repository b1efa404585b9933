"""The rough epoch time's arithmetic: each model's forward GFLOPs, from the table or counted."""

from __future__ import annotations

import pytest

from backend.services.estimates import GFLOPS, forward_gflops


@pytest.mark.parametrize("arch", ["resnet18", "resnet50d"])
def test_counting_a_model_gives_the_tables_figure(arch):
    # The table's ResNet-D rows were counted so; counting torchvision's resnet18 checks the method.
    assert forward_gflops.__wrapped__(arch) == pytest.approx(GFLOPS[arch], rel=0.01)


def test_a_model_outside_the_table_is_counted_once():
    forward_gflops.cache_clear()
    assert "resnet10t" not in GFLOPS
    first = forward_gflops("resnet10t")
    assert 0.5 < first < GFLOPS["resnet18"] and forward_gflops("resnet10t") == first
    assert forward_gflops.cache_info().hits == 1
