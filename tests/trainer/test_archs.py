"""model.arch: torchvision's ResNets and any timm model, validated against what is installed."""

import subprocess
import sys

import pytest

from trainer.archs import arch_info, torchvision_resnets
from trainer.config import ARCHS, ConfigError, RunConfig
from trainer.models import build_model

ONE_DIVISOR = dict.fromkeys(("stem", "layer1", "layer2", "layer3", "layer4", "fc"), 1.0)


def test_the_short_list_validates_without_importing_torch_or_timm():
    # The web process validates every submitted config and must start (and answer) without them.
    code = (
        "import sys\n"
        "from trainer.config import ARCHS, RunConfig\n"
        "for arch in ARCHS: RunConfig(model={'arch': arch, 'pretrained': False})\n"
        "loaded = sorted({'torch', 'torchvision', 'timm'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_short_list_is_all_resnets_from_shallow_to_deep():
    assert ARCHS[:2] == ("resnet18", "resnet18d") and ARCHS[-1] == "resnet152d" and "resnet50d" in ARCHS
    for arch in ARCHS:
        info = arch_info(arch)
        assert info.resnet_stages and info.zero_init_residual
        assert info.source == ("timm" if arch.endswith("d") else "torchvision")


@pytest.mark.parametrize("arch", ["resnext50_32x4d", "wide_resnet50_2", "efficientnet_b0", "resnet50d.a1_in1k"])
def test_any_torchvision_resnet_or_timm_name_is_accepted(arch):
    config = RunConfig.from_dict(
        {"model": {"arch": arch, "pretrained": False}, "optim": {"layer_lr_divisors": ONE_DIVISOR}}
    )
    assert config.model.arch == arch


@pytest.mark.parametrize(
    ("arch", "close"), [("resnet9", "resnet18"), ("resnet50e", "resnet50d"), ("resnet50d.nope_in1k", "resnet50d")]
)
def test_an_unknown_arch_names_what_is_installed(arch, close):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"model": {"arch": arch}})
    message = info.value.errors["model.arch"]
    assert message.startswith(f"unknown architecture {arch!r}; torchvision's are {', '.join(torchvision_resnets())};")
    assert "timm has " in message and close in message.rpartition("e.g.")[2]


def test_settings_a_model_cannot_take_are_refused_at_the_field():
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"model": {"arch": "efficientnet_b0", "pretrained": False}})
    assert "efficientnet_b0 has no ResNet stages" in info.value.errors["optim.layer_lr_divisors"]
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict(
            {
                "model": {"arch": "test_vit", "pretrained": False, "zero_init_residual": True},
                "optim": {"layer_lr_divisors": ONE_DIVISOR},
            }
        )
    assert info.value.errors == {
        "model.zero_init_residual": "test_vit has no residual blocks whose last norm it could zero"
    }
    # A timm ResNet outside the short list takes both.
    RunConfig.from_dict({"model": {"arch": "seresnext26d_32x4d", "pretrained": False, "zero_init_residual": True}})


def test_an_unknown_arch_is_refused_by_build_model_too():
    with pytest.raises(ValueError, match="unknown architecture 'resnet9'"):
        build_model("resnet9", 3, pretrained=False)
