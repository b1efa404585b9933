import urllib.error

import huggingface_hub
import numpy as np
import pytest
import timm
import torch
import torchvision
from huggingface_hub.errors import LocalEntryNotFoundError
from safetensors.torch import save_file

from trainer.config import RunConfig
from trainer.loop.teacher import TeacherError, load_teacher
from trainer.models.build import WeightsUnavailable, build_model, head_name


def count_trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    ("arch", "count"),
    [
        ("resnet50", 23_917_832),
        ("resnet152", 58_553_608),
        # timm's ResNet-D: the deep stem and the average-pooled shortcut add 19,232 parameters to ResNet50
        ("resnet50d", 23_937_064),
        ("resnet152d", 58_572_840),
    ],
)
def test_parameter_counts_match_the_report(arch, count):
    # On the meta device: the count without spending seconds on random initialisation.
    with torch.device("meta"):
        model = build_model(arch, 200, pretrained=False)
    assert count_trainable_parameters(model) == count


def test_weights_path_loads_an_imagenet_state_dict_and_replaces_the_head(tmp_path):
    imagenet = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet.state_dict(), path)
    model = build_model("resnet18", 7, pretrained=True, weights_path=str(path))
    assert torch.equal(model.get_parameter("conv1.weight"), imagenet.conv1.weight)
    assert torch.equal(model.get_buffer("layer4.1.bn2.running_var"), imagenet.layer4[1].bn2.running_var)
    fc = model.get_submodule("fc")
    assert isinstance(fc, torch.nn.Linear) and fc.out_features == 7 and fc.in_features == 512
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_missing_weights_path_says_so(tmp_path):
    with pytest.raises(WeightsUnavailable, match=r"model\.weights_path"):
        build_model("resnet18", 7, pretrained=True, weights_path=str(tmp_path / "nope.pth"))


def test_offline_without_cache_raises_weights_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as info:
        build_model("resnet18", 7, pretrained=True)
    message = str(info.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "model.weights_path" in message


def test_cached_weights_are_used_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    imagenet = torchvision.models.resnet18()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(imagenet.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setattr(torch.hub, "download_url_to_file", pytest.fail)
    model = build_model("resnet18", 3, pretrained=True)
    assert torch.equal(model.get_parameter("conv1.weight"), imagenet.conv1.weight)


@pytest.mark.parametrize(("arch", "block_norm"), [("resnet18", "bn2"), ("resnet50", "bn3")])
def test_zero_init_residual_zeroes_the_last_norm_of_each_block(arch, block_norm):
    model = build_model(arch, 5, pretrained=False, zero_init_residual=True)
    layers = [model.get_submodule(name) for name in ("layer1", "layer2", "layer3", "layer4")]
    blocks = [block for layer in layers for block in layer.children()]
    assert all(torch.all(getattr(block, block_norm).weight == 0) for block in blocks)
    assert torch.all(model.get_parameter("bn1.weight") == 1)
    plain = build_model(arch, 5, pretrained=False)
    assert torch.all(plain.get_parameter(f"layer1.0.{block_norm}.weight") == 1)


def test_zero_init_residual_with_pretrained_is_refused():
    with pytest.raises(ValueError, match="zero_init_residual"):
        build_model("resnet18", 5, pretrained=True, zero_init_residual=True)


def _finished_run(run_dir, num_classes=4, arch="resnet18"):
    (run_dir / "checkpoints").mkdir(parents=True)
    # One divisor for all: a model without ResNet stages trains as one group.
    divisors = dict.fromkeys(("stem", "layer1", "layer2", "layer3", "layer4", "fc"), 1.0)
    config = RunConfig(model={"arch": arch, "pretrained": False}, optim={"layer_lr_divisors": divisors})
    config.save(run_dir / "config.json")
    trained = build_model(arch, num_classes, pretrained=False)
    # The shape of the trainer's kept checkpoint (best.pt).
    best = {
        "model": trained.state_dict(),
        "epoch": 3,
        "num_classes": num_classes,
        "config": config.model_dump(mode="json"),
        "valid": {"loss": 1.5, "top1": 0.5},
    }
    torch.save(best, run_dir / "checkpoints" / "best.pt")
    return trained


def test_load_teacher_round_trip(tmp_path):
    trained = _finished_run(tmp_path / "teacher")
    teacher = load_teacher(tmp_path / "teacher", num_classes=4, device="cpu")
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert torch.equal(teacher.get_parameter("fc.weight"), trained.get_parameter("fc.weight"))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x), trained.eval()(x))


def test_teacher_with_other_classes_names_both_numbers(tmp_path):
    _finished_run(tmp_path / "teacher", num_classes=4)
    with pytest.raises(TeacherError, match=r"4 classes.*student has 200"):
        load_teacher(tmp_path / "teacher", num_classes=200, device="cpu")


def test_unfinished_teacher_run_is_explained(tmp_path):
    with pytest.raises(TeacherError, match="does not exist"):
        load_teacher(tmp_path / "missing", num_classes=4, device="cpu")
    _finished_run(tmp_path / "teacher")
    (tmp_path / "teacher" / "checkpoints" / "best.pt").unlink()
    with pytest.raises(TeacherError, match=r"best\.pt: is the teacher run finished\?"):
        load_teacher(tmp_path / "teacher", num_classes=4, device="cpu")
    (tmp_path / "teacher" / "config.json").unlink()
    with pytest.raises(TeacherError, match=r"config\.json: is the teacher run finished\?"):
        load_teacher(tmp_path / "teacher", num_classes=4, device="cpu")


def test_teacher_checkpoint_of_another_arch_is_explained(tmp_path):
    _finished_run(tmp_path / "teacher")
    RunConfig(model={"arch": "resnet34", "pretrained": False}).save(tmp_path / "teacher" / "config.json")
    with pytest.raises(TeacherError, match="does not fit a resnet34"):
        load_teacher(tmp_path / "teacher", num_classes=4, device="cpu")


def test_teacher_checkpoint_needing_unsafe_unpickling_is_refused(tmp_path):
    trained = _finished_run(tmp_path / "teacher")
    path = tmp_path / "teacher" / "checkpoints" / "best.pt"
    torch.save({"model": trained.state_dict(), "rng": np.random.get_state()}, path)
    with pytest.raises(TeacherError, match="more than tensors"):
        load_teacher(tmp_path / "teacher", num_classes=4, device="cpu")


# --- timm ---------------------------------------------------------------------------------------


def test_resnet_d_is_timms_network_with_a_new_head():
    model = build_model("resnet50d", 200, pretrained=False)
    assert isinstance(model, timm.models.ResNet)
    # ResNet-D: the three-3x3 stem and an average pool before the downsampling shortcut's 1x1 convolution.
    stem = model.get_submodule("conv1").modules()
    assert [m.kernel_size for m in stem if isinstance(m, torch.nn.Conv2d)] == [(3, 3)] * 3
    pool, conv = (model.get_submodule(f"layer2.0.downsample.{i}") for i in (0, 1))
    assert isinstance(pool, torch.nn.AvgPool2d) and isinstance(conv, torch.nn.Conv2d) and conv.kernel_size == (1, 1)
    assert head_name(model) == "fc" and model.get_submodule("fc").out_features == 200


def test_a_name_both_libraries_have_is_torchvisions_and_a_tag_reaches_timms():
    assert type(build_model("resnet18", 3, pretrained=False)) is torchvision.models.ResNet
    assert isinstance(build_model("resnet18.a1_in1k", 3, pretrained=False), timm.models.ResNet)


def test_any_timm_model_builds_with_its_head_replaced():
    model = build_model("test_efficientnet", 5, pretrained=False)
    assert head_name(model) == "classifier"
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


@pytest.mark.parametrize("zero_init", [False, True])
def test_zero_init_residual_decides_for_timm_resnets_too(zero_init):
    # timm zeroes the last norm of every block by default; the config's False must mean False.
    model = build_model("resnet18d", 5, pretrained=False, zero_init_residual=zero_init)
    blocks = [block for name in ("layer1", "layer4") for block in model.get_submodule(name).children()]
    assert all(torch.all(block.get_parameter("bn2.weight") == (0 if zero_init else 1)) for block in blocks)


def test_zero_init_residual_on_a_model_without_residual_blocks_is_refused():
    with pytest.raises(ValueError, match="test_vit has no residual blocks"):
        build_model("test_vit", 5, pretrained=False, zero_init_residual=True)


def _imagenet_timm(arch):
    return timm.create_model(arch, pretrained=False)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_timm_weights_path_loads_and_replaces_the_head(tmp_path, suffix):
    imagenet = _imagenet_timm("resnet18d")
    path = tmp_path / f"resnet18d{suffix}"
    if suffix == ".safetensors":
        save_file(imagenet.state_dict(), path)
    else:
        torch.save(imagenet.state_dict(), path)
    model = build_model("resnet18d", 7, pretrained=True, weights_path=str(path))
    assert torch.equal(model.get_parameter("conv1.0.weight"), imagenet.get_parameter("conv1.0.weight"))
    assert torch.equal(model.get_buffer("layer4.1.bn2.running_var"), imagenet.get_buffer("layer4.1.bn2.running_var"))
    assert model.get_submodule("fc").out_features == 7


def test_timm_weights_of_another_model_are_explained(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(WeightsUnavailable, match=r"model\.weights_path .*resnet18\.pth does not fit timm's resnet18d"):
        build_model("resnet18d", 7, pretrained=True, weights_path=str(path))


def test_torchvision_weights_of_another_model_are_explained(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(
        WeightsUnavailable,
        match=r"model\.weights_path .*resnet34\.pth does not fit torchvision's resnet18: "
        r"96 keys unexpected \(first layer1\.2\.conv1\.weight\)$",
    ):
        build_model("resnet18", 7, pretrained=True, weights_path=str(path))


def _offline_hugging_face(monkeypatch, cache):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))

    def offline(repo_id, filename, **kwargs):
        raise LocalEntryNotFoundError("no network and not in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)


def test_timm_offline_without_cache_says_where_to_put_the_file(tmp_path, monkeypatch):
    _offline_hugging_face(monkeypatch, tmp_path / "hub")
    with pytest.raises(WeightsUnavailable) as info:
        build_model("resnet18d", 7, pretrained=True)
    message = str(info.value)
    assert "https://huggingface.co/timm/resnet18d.ra2_in1k/resolve/main/model.safetensors" in message
    assert "model.weights_path" in message and str(tmp_path / "hub") in message
    assert "hf download timm/resnet18d.ra2_in1k model.safetensors" in message


def test_timm_cached_weights_are_used_offline(tmp_path, monkeypatch):
    # The Hugging Face cache's own layout: refs/main names the snapshot that holds the file.
    repo = tmp_path / "hub" / "models--timm--resnet18d.ra2_in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    imagenet = _imagenet_timm("resnet18d")
    save_file(imagenet.state_dict(), repo / "snapshots" / commit / "model.safetensors")
    _offline_hugging_face(monkeypatch, tmp_path / "hub")
    model = build_model("resnet18d", 3, pretrained=True)
    assert torch.equal(model.get_parameter("layer1.0.conv1.weight"), imagenet.get_parameter("layer1.0.conv1.weight"))


def test_a_timm_model_without_pretrained_weights_says_so():
    with pytest.raises(WeightsUnavailable, match=r"timm has no pretrained weights for botnet50ts_256: .*weights_path"):
        build_model("botnet50ts_256", 3, pretrained=True)


def test_load_teacher_round_trip_for_timm_teachers(tmp_path):
    for arch in ("resnet18d", "test_efficientnet"):
        trained = _finished_run(tmp_path / arch, arch=arch)
        teacher = load_teacher(tmp_path / arch, num_classes=4, device="cpu")
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(teacher(x), trained.eval()(x))
    with pytest.raises(TeacherError, match=r"4 classes.*student has 9"):
        load_teacher(tmp_path / "test_efficientnet", num_classes=9, device="cpu")
