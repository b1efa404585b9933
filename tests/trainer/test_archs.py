"""model.arch: torchvision's ResNets and any timm model, validated against the table of what is installed."""

import json
import subprocess
import sys

import pytest
import timm
import torchvision

from trainer.config import ARCHS, ConfigError, RunConfig
from trainer.models import arch_table
from trainer.models.build import build_model
from trainer.models.registry import TABLE, arch_info, torchvision_resnets

ONE_DIVISOR = dict.fromkeys(("stem", "layer1", "layer2", "layer3", "layer4", "fc"), 1.0)


def test_any_arch_validates_without_importing_torch_or_timm():
    # The web process validates every submitted config and must start (and answer) without them.
    code = (
        "import sys\n"
        "from trainer.config import ARCHS, ConfigError, RunConfig\n"
        "for arch in (*ARCHS, 'efficientnet_b0', 'vit_small_patch16_224.augreg_in21k', 'resnext50_32x4d'):\n"
        "    RunConfig(model={'arch': arch, 'pretrained': False})\n"
        "for model in ({'arch': 'resnet9'}, {'arch': 'test_vit', 'pretrained': False, 'zero_init_residual': True}):\n"
        "    try: RunConfig.from_dict({'model': model})\n"
        "    except ConfigError: pass\n"
        "    else: raise AssertionError(model)\n"
        "loaded = sorted({'torch', 'torchvision', 'timm'} & set(sys.modules))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_table_lists_what_the_installed_libraries_have():
    table = json.loads(TABLE.read_text())
    hint = "run `python -m trainer.models.arch_table` to write the table for the installed versions"
    assert (table["timm_version"], table["torchvision_version"]) == (timm.__version__, torchvision.__version__), hint
    assert set(table["timm"]) == set(timm.list_models()), hint
    assert table["timm_pretrained"] == sorted(timm.list_pretrained()), hint
    assert "resnet50" in table["torchvision"] and "wide_resnet101_2" in table["torchvision"]


@pytest.mark.parametrize("arch", ["resnet50d", "seresnext26d_32x4d", "efficientnet_b0", "test_vit", "convnext_atto"])
def test_the_tables_flags_are_what_building_the_model_finds(arch):
    assert json.loads(TABLE.read_text())["timm"][arch] == arch_table.timm_flags(arch)


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
    # timm's group_matcher gives an EfficientNet the per-stage rates; a PiT has none.
    RunConfig.from_dict({"model": {"arch": "efficientnet_b0", "pretrained": False}})
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"model": {"arch": "pit_ti_224", "pretrained": False}})
    assert "pit_ti_224 has neither ResNet's stages" in info.value.errors["optim.layer_lr_divisors"]
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
