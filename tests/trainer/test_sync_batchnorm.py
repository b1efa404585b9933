"""SyncBatchNorm on CPUs, and one training step of resnet18 under DDP: two gloo processes (real
processes), each with its part of one batch, compute what one process computes on the whole batch."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from trainer.config import OptimConfig, ScheduleConfig, TricksConfig
from trainer.loop.engine import train_one_epoch
from trainer.models.build import build_model
from trainer.models.param_groups import build_optimizer
from trainer.parallel.distributed import World, data_parallel, synced_batchnorm
from trainer.parallel.sync_batchnorm import CpuSyncBatchNorm, convert_sync_batchnorm
from trainer.tricks.recipe import Tricks
from trainer.tricks.schedules import build_schedule

CPU = torch.device("cpu")
SIZE = 32


def close(actual, expected) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


LAYOUTS = {"uneven": [(0, 4), (4, 9)], "one-empty": [(0, 0), (0, 5)]}  # each rank's [start, stop)


def _bn_layer() -> nn.BatchNorm2d:
    torch.manual_seed(0)
    layer = nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)
    return layer


def _resnet(world: World) -> tuple[nn.Module, nn.Module, torch.optim.Optimizer]:
    """A resnet18 as a run builds it (SyncBatchNorm, DDP on several ranks), with plain SGD: the step
    it takes is the gradient itself, so one step compares the gradients."""
    torch.manual_seed(0)
    model = synced_batchnorm(build_model("resnet18", 3, pretrained=False), world=world, device=CPU)
    optimizer = build_optimizer(model, OptimConfig(name="sgd", lr=1.0, momentum=0.0))
    return model, data_parallel(model, world=world, device=CPU), optimizer


def _one_step(world: World, images, targets, parts) -> tuple[dict, dict]:
    """``train_one_epoch`` over one global batch: this rank's part of it, weighted by its share."""
    model, stepped, optimizer = _resnet(world)
    start, stop = parts[world.rank] if world.distributed else (0, len(targets))
    stats = train_one_epoch(
        model=stepped,
        loader=[(images[start:stop], targets[start:stop])],
        optimizer=optimizer,
        schedule=build_schedule(ScheduleConfig(name="constant"), epochs=1, steps_per_epoch=1),
        tricks=Tricks(TricksConfig(), seed=0),
        start_step=0,
        world=world,
        global_sizes=[len(targets)] if world.distributed else None,
    )
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}, stats


def _rank_checks(rank: int, store: str, batches: dict, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    world = World(rank=rank, size=2)
    for name, (inputs, upstream, images, targets) in batches.items():
        layer = convert_sync_batchnorm(nn.Sequential(_bn_layer()), CPU).get_submodule("0")
        start, stop = LAYOUTS[name][rank]
        part = inputs[start:stop].clone().requires_grad_(True)
        output = layer(part)
        (output * upstream[start:stop]).sum().backward()
        results[name, rank] = {
            "type": type(layer).__name__,
            "output": output.detach(),
            "input_grad": part.grad,
            "weight_grad": layer.weight.grad,
            "bias_grad": layer.bias.grad,
            "running_mean": layer.running_mean,
            "running_var": layer.running_var,
            "step": _one_step(world, images, targets, LAYOUTS[name]),
        }
    dist.destroy_process_group()


def test_two_ranks_compute_one_process_batchnorm_and_training_step(tmp_path):
    """Two gloo processes, each with its part of one batch (uneven parts; an empty one), against one
    process on the whole batch. SyncBatchNorm on CPU: the same outputs, input gradients and running
    statistics as nn.BatchNorm2d, and rank gradients that sum to its gradients (DDP averages them).
    A training step of resnet18 through train_one_epoch (SyncBatchNorm, DDP, each part's loss weighted
    by its share of the global batch): the same new weights and the same epoch figures."""
    generator = torch.Generator().manual_seed(1)
    batches = {}
    for name, parts in LAYOUTS.items():
        count = parts[-1][1]
        batches[name] = (
            torch.randn(count, 3, 4, 4, generator=generator) * 3 + 2,
            torch.randn(count, 3, 4, 4, generator=generator),
            torch.randn(count, 3, SIZE, SIZE, generator=generator),
            torch.randint(3, (count,), generator=generator),
        )
    results = mp.Manager().dict()
    mp.spawn(_rank_checks, args=(str(tmp_path / "store"), batches, results), nprocs=2)

    for name, (inputs, upstream, images, targets) in batches.items():
        reference = _bn_layer()
        whole = inputs.clone().requires_grad_(True)
        expected = reference(whole)
        (expected * upstream).sum().backward()
        ranks = [results[name, 0], results[name, 1]]
        assert {rank["type"] for rank in ranks} == {CpuSyncBatchNorm.__name__}
        close(torch.cat([rank["output"] for rank in ranks]), expected.detach())
        close(torch.cat([rank["input_grad"] for rank in ranks]), whole.grad)
        close(sum(rank["weight_grad"] for rank in ranks), reference.weight.grad)
        close(sum(rank["bias_grad"] for rank in ranks), reference.bias.grad)
        for rank in ranks:
            close(rank["running_mean"], reference.running_mean)
            close(rank["running_var"], reference.running_var)

        weights, stats = _one_step(World(), images, targets, LAYOUTS[name])
        before = _resnet(World())[0].state_dict()
        for rank in ranks:
            rank_weights, rank_stats = rank["step"]
            for key, tensor in weights.items():
                if tensor.is_floating_point():  # the step's size, relative to the update one process made
                    change = tensor - before[key]
                    error = (rank_weights[key] - tensor).norm() / max(change.norm(), 1e-12)
                    assert error < 1e-4, (name, key, float(error))
            assert rank_stats["images"] == stats["images"] == len(targets)
            assert math.isclose(rank_stats["train_loss"], stats["train_loss"], rel_tol=1e-5)
            assert rank_stats["train_top1"] == stats["train_top1"]


def test_conversion_keeps_the_parameters_and_the_state_dict_keys():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(2)))
    weight = model[1].weight
    keys = set(model.state_dict())
    converted = convert_sync_batchnorm(model, CPU)
    assert isinstance(converted.get_submodule("1"), CpuSyncBatchNorm)
    assert isinstance(converted.get_submodule("2.0"), CpuSyncBatchNorm)
    assert converted.get_submodule("1").weight is weight
    assert set(converted.state_dict()) == keys
