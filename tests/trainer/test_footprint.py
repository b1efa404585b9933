"""The footprint table the server prices GPU memory from holds what the models really keep: their
parameters, and the activations saved for backward, measured again here at other image sizes."""

from __future__ import annotations

import pytest
import torch

from trainer.models.build import build_model
from trainer.models.footprint import footprint, measured_archs, size_scale
from trainer.models.footprint_table import CLASSES, per_image


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_the_activations_saved_for_backward_scale_with_the_pixels_as_the_table_says(arch):
    model = build_model(arch, CLASSES, pretrained=False).train()
    table = footprint(arch)
    assert table is not None
    for image_size in (64, 112):
        for amp, listed in ((False, table.activations), (True, table.activations_amp)):
            measured, _largest = per_image(model, image_size=image_size, amp=amp)
            assert measured == pytest.approx(listed * size_scale(image_size), rel=0.03), (image_size, amp)
    # bf16 autocast keeps about half: every convolution, batch norm and ReLU saves bf16.
    assert table.activations_amp / table.activations == pytest.approx(0.5, abs=0.05)


def test_every_parameter_count_is_the_built_models():
    for arch in measured_archs():
        with torch.device("meta"):  # the layout, without allocating a weight
            model = build_model(arch, CLASSES, pretrained=False)
        found = footprint(arch)
        assert found is not None and found.params == sum(param.numel() for param in model.parameters()), arch


def test_a_pretrained_tag_has_its_archs_footprint_and_an_unmeasured_arch_none():
    assert footprint("resnet50d.a1_in1k") == footprint("resnet50d")
    assert footprint("vit_small_patch16_224") is None
