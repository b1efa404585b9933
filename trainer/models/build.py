"""Models with a new head: torchvision's ResNets and any timm model, ImageNet weights that fail clearly
offline, and the KD teacher.

Pretrained weights come from a local file (``model.weights_path``) or the library's own cache:
torchvision's in torch hub's ``checkpoints/``, timm's in the Hugging Face cache (or torch hub's, for
the few timm weights hosted elsewhere). Only when they are not cached is a download tried; when that
fails too, the message names the file, its address and where to put it.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from trainer.models.registry import ArchInfo, arch_info
from trainer.models.weights import unavailable_message

HF_WEIGHTS_FILE = "model.safetensors"  # what timm's Hugging Face repositories hold


class Float32Linear(nn.Linear):
    """A classifier head that computes in float32 under autocast. Its bf16 output would keep 8 bits of
    mantissa: near-equal classes tie (top-k then ranks them by chance) and the loss reads rounded logits.
    The parameters and the state_dict are nn.Linear's."""

    def forward(self, input: Tensor) -> Tensor:
        with torch.autocast(input.device.type, enabled=False):
            return F.linear(input.float(), self.weight, self.bias)


def _float32_head(model: nn.Module) -> nn.Module:
    head = model.get_submodule(head_name(model))
    if type(head) is nn.Linear:
        head.__class__ = Float32Linear  # the same module and parameters, only its forward changes
    return model


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are neither cached nor downloadable; the message says how to provide them."""


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state_dict from a .safetensors file or a torch.save file of tensors (never unpickled code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailable(f"model.weights_path: no such file {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def _torch_hub_state_dict(url: str, arch: str) -> dict[str, torch.Tensor]:
    try:
        # Reads torch hub's cache, downloading only when the file is not there yet.
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
    except (OSError, http.client.HTTPException) as exc:
        raise WeightsUnavailable(unavailable_message(arch, url, exc)) from exc


def _hugging_face_state_dict(repo_id: str, filename: str, arch: str) -> dict[str, torch.Tensor]:
    import huggingface_hub
    from huggingface_hub.constants import HF_HUB_CACHE

    cached = huggingface_hub.try_to_load_from_cache(repo_id, filename)
    if not isinstance(cached, str):
        try:
            cached = huggingface_hub.hf_hub_download(repo_id, filename)
        except OSError as exc:  # huggingface_hub's HTTP and "not in the local cache" errors are OSErrors
            url = huggingface_hub.hf_hub_url(repo_id, filename)
            raise WeightsUnavailable(
                f"pretrained weights for {arch} ({repo_id}/{filename}) are not cached and could not be downloaded "
                f"({exc}). Download {url} and set model.weights_path to it, or fill the Hugging Face cache "
                f"({HF_HUB_CACHE}) with `hf download {repo_id} {filename}` and copy it here."
            ) from exc
    return _read_state_dict(cached)


def _timm_imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is not None and cfg.hf_hub_id:
        return _hugging_face_state_dict(cfg.hf_hub_id, cfg.hf_hub_filename or HF_WEIGHTS_FILE, arch)
    if cfg is not None and isinstance(cfg.url, str) and cfg.url:
        return _torch_hub_state_dict(cfg.url, arch)
    raise WeightsUnavailable(
        f"timm has no pretrained weights for {arch}: set model.pretrained to false, "
        "or model.weights_path to a state_dict of your own"
    )


def _torchvision_model(
    info: ArchInfo, num_classes: int, *, pretrained: bool, weights_path: str | None, zero_init_residual: bool
) -> nn.Module:
    model = getattr(torchvision.models, info.name)(weights=None, zero_init_residual=zero_init_residual)
    if pretrained:
        if weights_path is not None:
            state = _read_state_dict(weights_path)
        else:
            url = torchvision.models.get_model_weights(info.name).IMAGENET1K_V1.url
            state = _torch_hub_state_dict(url, info.name)
        misfit = _misfit(model.state_dict(), state)
        if misfit:
            source = f"model.weights_path {weights_path}" if weights_path is not None else "the cached weights"
            raise WeightsUnavailable(f"{source} does not fit torchvision's {info.name}: {misfit}")
        model.load_state_dict(state)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


def _misfit(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    """How ``given`` differs from the state_dict the model expects, shortly ("" when it fits): a
    wrong file's full list of keys runs to hundreds of lines."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    reshaped = [key for key in expected if key in given and given[key].shape != expected[key].shape]
    parts = [
        f"{len(keys)} {what} (first {keys[0]})"
        for keys, what in ((missing, "keys missing"), (unexpected, "keys unexpected"), (reshaped, "of another shape"))
        if keys
    ]
    return ", ".join(parts)


def _timm_model(
    info: ArchInfo, num_classes: int, *, pretrained: bool, weights_path: str | None, zero_init_residual: bool
) -> nn.Module:
    import timm

    # timm's ResNets zero the last norm of each block by default; the config decides here, as for torchvision.
    options: dict[str, Any] = {"zero_init_last": zero_init_residual} if info.zero_init_residual else {}
    if not pretrained:
        return timm.create_model(info.name, pretrained=False, num_classes=num_classes, **options)
    state = _read_state_dict(weights_path) if weights_path is not None else _timm_imagenet_state_dict(info.name)
    try:
        # timm loads the state_dict strictly, adapting it first where the model needs that (its filter_fn).
        model: Any = timm.create_model(
            info.name, pretrained=True, pretrained_cfg_overlay={"state_dict": state}, **options
        )
    except RuntimeError as exc:
        source = f"model.weights_path {weights_path}" if weights_path is not None else "the cached weights"
        raise WeightsUnavailable(f"{source} does not fit timm's {info.name}: {exc}") from exc
    model.reset_classifier(num_classes)
    return model


def build_model(
    arch: str,
    num_classes: int,
    *,
    pretrained: bool,
    weights_path: str | None = None,
    zero_init_residual: bool = False,
) -> nn.Module:
    """A torchvision ResNet or a timm model; ``pretrained`` loads its ImageNet weights, then the head is
    replaced for ``num_classes`` (a linear head computes in float32: ``Float32Linear``)."""
    info = arch_info(arch)
    if pretrained and zero_init_residual:
        raise ValueError("zero_init_residual only applies without pretrained weights, which would overwrite it")
    if zero_init_residual and not info.zero_init_residual:
        raise ValueError(f"zero_init_residual: {arch} has no residual blocks whose last norm it could zero")
    build = _torchvision_model if info.source == "torchvision" else _timm_model
    model = build(
        info,
        num_classes,
        pretrained=pretrained,
        weights_path=weights_path,
        zero_init_residual=zero_init_residual,
    )
    return _float32_head(model)


def head_name(model: nn.Module) -> str:
    """The classifier's module name: ``fc`` for ResNets, timm's ``get_classifier()`` for any timm model."""
    get_classifier: Any = getattr(model, "get_classifier", None)
    if get_classifier is None:
        return "fc"
    head = get_classifier()
    return next(name for name, module in model.named_modules() if module is head)
