import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from trainer.config import RunConfig
from trainer.models import TeacherError, WeightsUnavailable, build_model, load_teacher


def count_trainable_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize(("arch", "count"), [("resnet50", 23_917_832), ("resnet152", 58_553_608)])
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
    config = RunConfig(model={"arch": arch, "pretrained": False})
    config.save(run_dir / "config.json")
    trained = build_model(arch, num_classes, pretrained=False)
    # The shape of the trainer's best checkpoint.
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
