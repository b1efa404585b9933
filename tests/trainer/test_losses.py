import pytest
import torch
import torch.nn.functional as F

from trainer.tricks.losses import TrainingLoss, distillation_loss, smoothed_cross_entropy


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 10, generator=g, dtype=torch.float64) * 3
    target = torch.randint(0, 10, (8,), generator=g)
    teacher = torch.randn(8, 10, generator=g, dtype=torch.float64) * 3
    return logits, target, teacher


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_smoothed_cross_entropy_is_pytorch_and_the_report_formula(batch, eps):
    logits, target, _ = batch
    ours = smoothed_cross_entropy(logits, target, eps)
    torch.testing.assert_close(ours, F.cross_entropy(logits, target, label_smoothing=eps))
    log_p = F.log_softmax(logits, dim=-1)
    nll = -log_p.gather(1, target[:, None]).squeeze(1)
    report = ((1 - eps) * nll + eps * (-log_p).mean(dim=-1)).mean()
    torch.testing.assert_close(ours, report)


@pytest.mark.parametrize("temperature", [1.0, 10.0])
def test_distillation_is_scaled_kl_batchmean(batch, temperature):
    logits, _, teacher = batch
    expected = temperature**2 * F.kl_div(
        F.log_softmax(logits / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1), reduction="batchmean"
    )
    torch.testing.assert_close(distillation_loss(logits, teacher, temperature), expected)
    assert distillation_loss(teacher, teacher, temperature).abs() < 1e-12


def test_without_mixup_or_teacher_it_is_the_smoothed_loss(batch):
    logits, target, _ = batch
    parts = TrainingLoss(label_smoothing=0.1, kd_alpha=0.1, kd_temperature=10)(logits, target, target, 1.0)
    torch.testing.assert_close(parts.loss, F.cross_entropy(logits, target, label_smoothing=0.1))
    assert parts.task_loss is parts.loss and parts.kd_loss is None
    plain = TrainingLoss(label_smoothing=0.0, kd_alpha=0.1, kd_temperature=10)(logits, target, target, 1.0)
    torch.testing.assert_close(plain.loss, F.cross_entropy(logits, target))


@pytest.mark.parametrize("lam", [0.3, torch.tensor(0.7, dtype=torch.float64)])
def test_mixup_mixes_the_losses_not_the_labels(batch, lam):
    logits, target_a, _ = batch
    target_b = target_a.roll(1)
    parts = TrainingLoss(label_smoothing=0.1, kd_alpha=0.1, kd_temperature=10)(logits, target_a, target_b, lam)
    expected = lam * F.cross_entropy(logits, target_a, label_smoothing=0.1) + (1 - lam) * F.cross_entropy(
        logits, target_b, label_smoothing=0.1
    )
    torch.testing.assert_close(parts.loss, expected)

    # Equivalent to cross-entropy against the mixed smoothed one-hot targets (timm's formulation).
    def smooth(t):
        return F.one_hot(t, 10).double() * 0.9 + 0.1 / 10

    soft = lam * smooth(target_a) + (1 - lam) * smooth(target_b)
    torch.testing.assert_close(parts.loss, F.cross_entropy(logits, soft))


def test_distillation_weighting_and_gradients_reach_the_student_only(batch):
    logits, target, teacher = batch
    student = logits.clone().requires_grad_(True)
    teacher = teacher.clone().requires_grad_(True)
    loss_fn = TrainingLoss(label_smoothing=0.1, kd_alpha=0.25, kd_temperature=4)
    parts = loss_fn(student, target, target, 1.0, teacher_logits=teacher)
    torch.testing.assert_close(parts.task_loss, F.cross_entropy(logits, target, label_smoothing=0.1))
    assert parts.kd_loss is not None
    torch.testing.assert_close(parts.kd_loss, distillation_loss(logits, teacher.detach(), 4))
    torch.testing.assert_close(parts.loss, 0.25 * parts.task_loss + 0.75 * parts.kd_loss)
    parts.loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
