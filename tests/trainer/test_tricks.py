"""The tricks object the loop trains through: mixup seeded per epoch, the loss with its teacher."""

import torch

from trainer.config import TricksConfig
from trainer.tricks.losses import TrainingLoss
from trainer.tricks.recipe import Tricks


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 12, generator=g), torch.arange(8)


def test_an_epoch_mixes_the_same_way_each_time_it_is_set():
    images, targets = _batch()
    tricks = Tricks(TricksConfig(mixup_alpha=0.4), seed=5)

    def epoch(number: int):
        tricks.set_epoch(number)
        return [tricks.mix(images, targets) for _ in range(3)]

    first, again, other = epoch(2), epoch(2), epoch(3)
    assert [(m.lam, m.target_b.tolist()) for m in first] == [(m.lam, m.target_b.tolist()) for m in again]
    assert [m.lam for m in first] != [m.lam for m in other]
    assert all(torch.equal(m.dominant_targets, m.target_a if m.lam >= 0.5 else m.target_b) for m in first)


def test_without_mixup_the_batch_passes_as_is_and_nothing_distils():
    images, targets = _batch()
    tricks = Tricks(TricksConfig(label_smoothing=0.1), seed=0)
    batch = tricks.mix(images, targets)
    assert batch.images is images and batch.lam == 1.0 and torch.equal(batch.dominant_targets, targets)
    logits = torch.randn(8, 8, generator=torch.Generator().manual_seed(1))
    parts = tricks.loss(logits, batch)
    assert not tricks.distils and parts.kd_loss is None
    torch.testing.assert_close(parts.loss, torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1))


def test_the_teacher_scores_the_same_mixed_images():
    images, targets = _batch()
    teacher = torch.nn.Linear(12, 8).eval().requires_grad_(False)
    config = TricksConfig(mixup_alpha=0.3, kd={"alpha": 0.25, "temperature": 4.0})
    tricks = Tricks(config, seed=0, teacher=teacher)
    tricks.set_epoch(1)
    batch = tricks.mix(images, targets)
    logits = torch.randn(8, 8, generator=torch.Generator().manual_seed(2), requires_grad=True)
    parts = tricks.loss(logits, batch)
    expected = TrainingLoss(label_smoothing=0.0, kd_alpha=0.25, kd_temperature=4.0)(
        logits, batch.target_a, batch.target_b, batch.lam, teacher(batch.images)
    )
    assert tricks.distils
    torch.testing.assert_close(parts.loss, expected.loss)
    torch.testing.assert_close(parts.kd_loss, expected.kd_loss)
    parts.loss.backward()
    assert logits.grad is not None
