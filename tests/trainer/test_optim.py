import pytest
import timm
import torch
import torchvision

from trainer.config import OptimConfig
from trainer.models.param_groups import build_optimizer
from trainer.models.stages import PARAM_GROUPS, WHOLE_MODEL

ONE_DIVISOR = dict.fromkeys(PARAM_GROUPS, 4.0)


@pytest.fixture(scope="module")
def model():
    return torchvision.models.resnet18(num_classes=5)


def _group_ids(optimizer):
    return [id(p) for group in optimizer.param_groups for p in group["params"]]


def test_one_group_per_stage_at_lr_over_divisor(model):
    optim = OptimConfig(lr=1e-3)
    optimizer = build_optimizer(model, optim)
    assert isinstance(optimizer, torch.optim.Adam)
    assert [g["name"] for g in optimizer.param_groups] == list(PARAM_GROUPS)
    divisors = optim.layer_lr_divisors
    for group in optimizer.param_groups:
        expected = 1e-3 / getattr(divisors, group["name"])
        assert group["peak_lr"] == group["lr"] == pytest.approx(expected, rel=1e-12)
    stem = optimizer.param_groups[0]["params"]
    assert {id(p) for p in stem} == {id(p) for p in [*model.conv1.parameters(), *model.bn1.parameters()]}
    assert {id(p) for p in optimizer.param_groups[-1]["params"]} == {id(p) for p in model.fc.parameters()}


@pytest.mark.parametrize("no_bias_decay", [False, True])
def test_every_parameter_in_exactly_one_group(model, no_bias_decay):
    optimizer = build_optimizer(model, OptimConfig(weight_decay=1e-4, no_bias_decay=no_bias_decay))
    ids = _group_ids(optimizer)
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}


def test_no_bias_decay_moves_1d_params_to_zero_decay_groups(model):
    optimizer = build_optimizer(model, OptimConfig(lr=1e-2, weight_decay=1e-4, no_bias_decay=True, name="sgd"))
    assert isinstance(optimizer, torch.optim.SGD)
    names = [g["name"] for g in optimizer.param_groups]
    assert names == [n for stage in PARAM_GROUPS for n in (stage, f"{stage}.no_decay")]
    peaks = {g["name"]: g["peak_lr"] for g in optimizer.param_groups}
    for group in optimizer.param_groups:
        stage, _, suffix = group["name"].partition(".")
        assert group["peak_lr"] == peaks[stage]
        if suffix:
            assert group["weight_decay"] == 0.0
            assert all(p.ndim == 1 for p in group["params"])
        else:
            assert group["weight_decay"] == 1e-4
            assert all(p.ndim > 1 for p in group["params"])
    assert optimizer.param_groups[0]["momentum"] == 0.9
    assert optimizer.param_groups[0]["nesterov"] is False


def test_frozen_parameters_are_left_out():
    model = torchvision.models.resnet18(num_classes=5)
    model.conv1.requires_grad_(False)
    optimizer = build_optimizer(model, OptimConfig())
    assert id(model.conv1.weight) not in set(_group_ids(optimizer))


def test_timm_resnets_get_the_same_six_groups_with_the_deep_stem_in_stem():
    model = timm.create_model("resnet18d", num_classes=5)
    optimizer = build_optimizer(model, OptimConfig(lr=1e-3))
    assert [g["name"] for g in optimizer.param_groups] == list(PARAM_GROUPS)
    stem = {id(p) for p in optimizer.param_groups[0]["params"]}
    # conv1 is the three-3x3 stem (conv1.0, conv1.3, conv1.6 and the norms between them).
    expected = [*model.get_submodule("conv1").parameters(), *model.get_submodule("bn1").parameters()]
    assert stem == {id(p) for p in expected} and len(stem) == 9
    assert set(_group_ids(optimizer)) == {id(p) for p in model.parameters()}


def _named_stages(model, optimizer):
    """Each parameter's group name (without ``.no_decay``), by parameter name."""
    group_of = {
        id(p): group["name"].removesuffix(".no_decay") for group in optimizer.param_groups for p in group["params"]
    }
    return {name: group_of[id(param)] for name, param in model.named_parameters()}


@pytest.mark.parametrize(
    ("arch", "stem", "head", "deepest"),
    [
        ("test_vit", "patch_embed.proj.weight", "head.weight", "norm.weight"),
        ("test_efficientnet", "conv_stem.weight", "classifier.weight", "conv_head.weight"),
        ("test_convnext", "stem.0.weight", "head.fc.weight", "stages.3.blocks.0.conv_dw.weight"),
    ],
)
def test_a_timm_model_without_resnet_names_gets_the_six_groups_from_its_group_matcher(arch, stem, head, deepest):
    model = timm.create_model(arch, num_classes=5)
    optim = OptimConfig(lr=1e-3, no_bias_decay=True)
    optimizer = build_optimizer(model, optim)
    stages = _named_stages(model, optimizer)
    assert (stages[stem], stages[head], stages[deepest]) == ("stem", "fc", "layer4")
    # Shallow to deep: in the model's own order, no parameter falls in an earlier stage than the one before.
    order = [PARAM_GROUPS.index(stages[name]) for name, _ in model.named_parameters()]
    assert order == sorted(order) and set(stages.values()) == set(PARAM_GROUPS)
    for group in optimizer.param_groups:
        divisor = getattr(optim.layer_lr_divisors, group["name"].removesuffix(".no_decay"))
        assert group["peak_lr"] == pytest.approx(1e-3 / divisor, rel=1e-12)
    ids = _group_ids(optimizer)
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


def test_a_vits_twelve_blocks_are_cut_into_four_runs_of_three():
    model = timm.create_model("vit_tiny_patch16_224", num_classes=5)
    stages = _named_stages(model, build_optimizer(model, OptimConfig()))
    blocks = [stages[f"blocks.{i}.attn.qkv.weight"] for i in range(12)] + [stages["norm.weight"]]
    # timm's matcher puts the final norm with the last block.
    assert blocks == ["layer1"] * 3 + ["layer2"] * 3 + ["layer3"] * 3 + ["layer4"] * 4


@pytest.mark.parametrize("no_bias_decay", [False, True])
def test_a_model_without_stages_trains_as_one_group_when_every_divisor_is_the_same(no_bias_decay):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten())
    optim = OptimConfig(lr=1e-3, weight_decay=1e-4, no_bias_decay=no_bias_decay, layer_lr_divisors=ONE_DIVISOR)
    optimizer = build_optimizer(model, optim)
    names = [WHOLE_MODEL, f"{WHOLE_MODEL}.no_decay"] if no_bias_decay else [WHOLE_MODEL]
    assert [g["name"] for g in optimizer.param_groups] == names
    assert all(g["peak_lr"] == pytest.approx(1e-3 / 4) for g in optimizer.param_groups)
    ids = _group_ids(optimizer)
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}


def test_per_stage_rates_on_a_model_without_stages_are_refused():
    with pytest.raises(ValueError, match=r"optim\.layer_lr_divisors: .*0\.weight.*same value"):
        build_optimizer(torch.nn.Sequential(torch.nn.Linear(2, 2)), OptimConfig())
    with pytest.raises(ValueError, match=r"neither ResNet's stages .* nor a timm group_matcher"):
        build_optimizer(torch.nn.Linear(2, 2), OptimConfig())


def test_linear_scaling_multiplies_every_rate_by_batch_over_256_and_is_off_by_default(model):
    from trainer.config import RunConfig
    from trainer.tricks.schedules import schedule_preview

    plain = RunConfig.from_dict({"batch_size": 512})
    scaled = RunConfig.from_dict({"batch_size": 512, "optim": {"linear_scaling": True}})
    assert (plain.lr_scale, scaled.lr_scale) == (1.0, 2.0)
    assert RunConfig.from_dict({"batch_size": 64, "optim": {"linear_scaling": True}}).lr_scale == 0.25
    unscaled = build_optimizer(model, plain.optim, lr_scale=plain.lr_scale)
    doubled = build_optimizer(model, scaled.optim, lr_scale=scaled.lr_scale)
    for a, b in zip(unscaled.param_groups, doubled.param_groups, strict=True):
        assert b["peak_lr"] == pytest.approx(2 * a["peak_lr"], rel=1e-12)
    # The launch page's preview plots the same rates the optimizer gets.
    preview = schedule_preview(scaled, steps_per_epoch=10)["groups"]
    assert max(preview["fc"]) == pytest.approx(doubled.param_groups[-1]["peak_lr"], rel=1e-6)
    assert plain.fingerprint() != scaled.fingerprint()
