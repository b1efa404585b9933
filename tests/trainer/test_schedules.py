import itertools
import math

import pytest
import torch

from trainer.config import RunConfig, ScheduleConfig
from trainer.tricks.schedules import LRSchedule, apply_schedule, build_schedule, schedule_preview

PEAKS = [1e-4, 1.25e-4, 1e-3 / 6, 2.5e-4, 5e-4, 5e-4]


def _optimizers(kind):
    """Two identical optimizers with several groups of different peak rates: ours and PyTorch's."""

    def make():
        groups = [{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr, "peak_lr": lr} for lr in PEAKS]
        if kind == "adam":
            return torch.optim.Adam(groups)
        return torch.optim.SGD(groups, momentum=0.9)

    return make(), make()


def _close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-18)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
@pytest.mark.parametrize(("epochs", "steps_per_epoch"), [(10, 33), (1, 3), (1, 1)])
def test_onecycle_matches_pytorch_step_by_step(kind, epochs, steps_per_epoch):
    ours, ref = _optimizers(kind)
    total = epochs * steps_per_epoch
    reference = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=PEAKS, total_steps=total)
    schedule = build_schedule(ScheduleConfig(name="onecycle"), epochs=epochs, steps_per_epoch=steps_per_epoch)
    for step in range(total):
        apply_schedule(ours, schedule, step)
        for mine, theirs in zip(ours.param_groups, ref.param_groups, strict=True):
            assert _close(mine["lr"], theirs["lr"]), (step, mine["lr"], theirs["lr"])
            if kind == "adam":
                assert _close(mine["betas"][0], theirs["betas"][0]), step
                assert mine["betas"][1] == theirs["betas"][1] == 0.999
            else:
                assert _close(mine["momentum"], theirs["momentum"]), step
        ref.step()
        reference.step()


def test_cosine_without_warmup_matches_pytorch_step_by_step():
    ours, ref = _optimizers("adam")
    epochs, steps_per_epoch = 10, 37
    total = epochs * steps_per_epoch
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=total, eta_min=0)
    schedule = build_schedule(ScheduleConfig(name="cosine"), epochs=epochs, steps_per_epoch=steps_per_epoch)
    assert schedule.beta1(0) is None
    for step in range(total):
        apply_schedule(ours, schedule, step)
        for mine, theirs in zip(ours.param_groups, ref.param_groups, strict=True):
            assert _close(mine["lr"], theirs["lr"]), (step, mine["lr"], theirs["lr"])
            assert mine["betas"] == theirs["betas"] == (0.9, 0.999)
        ref.step()
        reference.step()


@pytest.mark.parametrize("name", ["cosine", "constant"])
def test_linear_warmup_then_main_schedule(name):
    schedule = build_schedule(ScheduleConfig(name=name, warmup_epochs=1.5), epochs=5, steps_per_epoch=10)
    assert schedule.warmup_steps == 15
    warm = [schedule.factor(s) for s in range(16)]
    assert warm[0] == pytest.approx(1 / 16)
    steps = [b - a for a, b in itertools.pairwise(warm)]
    assert all(d == pytest.approx(1 / 16) for d in steps)  # linear, reaching the peak at step 15
    assert warm[-1] == 1.0
    tail = [schedule.factor(s) for s in range(15, 50)]
    if name == "constant":
        assert tail == [1.0] * 35
    else:
        assert all(a > b for a, b in itertools.pairwise(tail))
        assert tail[-1] == pytest.approx((1 + math.cos(math.pi * 34 / 35)) / 2)


def test_steps_past_the_end_hold_the_last_value_and_negative_steps_raise():
    schedule = LRSchedule(name="onecycle", total_steps=20, warmup_steps=0)
    assert schedule.factor(20) == schedule.factor(25) == schedule.factor(19)
    assert schedule.beta1(20) == schedule.beta1(19)
    with pytest.raises(ValueError, match="step must be >= 0"):
        schedule.factor(-1)


@pytest.mark.parametrize(("epochs", "steps_per_epoch", "points"), [(10, 132, 1320), (100, 500, 2000)])
def test_preview_shape_and_group_ratios(epochs, steps_per_epoch, points):
    config = RunConfig(epochs=epochs)
    preview = schedule_preview(config, steps_per_epoch=steps_per_epoch)
    assert len(preview["steps"]) == len(preview["epochs"]) == points
    assert preview["steps"][0] == 0 and preview["steps"][-1] == epochs * steps_per_epoch - 1
    assert preview["steps"] == sorted(set(preview["steps"]))
    assert preview["epochs"][-1] == pytest.approx(epochs - 1 / steps_per_epoch)
    groups = preview["groups"]
    assert list(groups) == ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]
    assert all(len(lrs) == points for lrs in groups.values())
    divisors = config.optim.layer_lr_divisors
    for name, lrs in groups.items():
        # Every group is the same curve scaled by 1 / its divisor.
        scale = divisors.stem / getattr(divisors, name)
        assert all(math.isclose(lr, stem * scale, rel_tol=1e-12) for lr, stem in zip(lrs, groups["stem"], strict=True))
    # OneCycle peaks at lr / divisor, 30 % of the way in.
    peak_index = max(range(points), key=groups["fc"].__getitem__)
    assert groups["fc"][peak_index] == pytest.approx(1e-3 / 2, rel=1e-4)
    assert preview["epochs"][peak_index] == pytest.approx(0.3 * epochs, abs=0.05 * epochs)


def test_preview_follows_the_configured_schedule():
    config = RunConfig(epochs=4, schedule={"name": "cosine", "warmup_epochs": 1})
    preview = schedule_preview(config, steps_per_epoch=10)
    stem = preview["groups"]["stem"]
    assert stem[0] == pytest.approx(1e-4 / 11)
    assert max(stem) == stem[10] == pytest.approx(1e-4)
