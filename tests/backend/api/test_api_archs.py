"""model.arch through the API: timm names are queued, unknown ones and settings a model cannot take are 422s."""

import pytest
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK

from backend.app import create_app

ONE_DIVISOR = dict.fromkeys(("stem", "layer1", "layer2", "layer3", "layer4", "fc"), 1.0)


@pytest.fixture
def post_run(make_settings, sqlite_url, data_root):
    with TestClient(create_app(make_settings(sqlite_url)), base_url=LOOPBACK) as client:
        yield lambda **config: client.post(
            "/api/v1/runs", json={"config": {"data": {"root": str(data_root)}, **config}}
        )


@pytest.mark.parametrize(
    ("arch", "divisors"),
    [("resnet50d", {}), ("efficientnet_b0", {}), ("pit_ti_224", {"layer_lr_divisors": ONE_DIVISOR})],
)
def test_a_timm_arch_is_queued(post_run, arch, divisors):
    # Per-stage rates by ResNet's names or timm's group_matcher; a model with neither takes one rate.
    response = post_run(model={"arch": arch, "pretrained": False}, optim=divisors)
    assert response.status_code == 201, response.text
    assert response.json()["config"]["model"]["arch"] == arch


@pytest.mark.parametrize(
    ("config", "loc", "message"),
    [
        (
            {"model": {"arch": "resnet9"}},
            ["model", "arch"],
            "unknown architecture 'resnet9'; torchvision's are resnet18",
        ),
        (
            {"model": {"arch": "pit_ti_224", "pretrained": False}},
            ["optim", "layer_lr_divisors"],
            "pit_ti_224 has neither ResNet's stages",
        ),
    ],
)
def test_bad_archs_are_422_at_the_field(post_run, config, loc, message):
    response = post_run(**config)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "config", *loc] and message in error["msg"]
