import pytest
import torch
from scipy import stats

from trainer.tricks.mixup import mixup, sample_beta


def _batch(n=6):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, 4, 4, generator=g), torch.arange(n) * 7


def test_alpha_zero_is_identity():
    images, targets = _batch()
    out = mixup(images, targets, alpha=0.0, generator=torch.Generator().manual_seed(0))
    assert out.images is images and out.target_a is targets and out.target_b is targets and out.lam == 1.0


@pytest.mark.parametrize("alpha", [1.0, 0.2, 0.01])
def test_partner_is_a_permutation_of_the_same_batch(alpha):
    images, targets = _batch()
    out = mixup(images, targets, alpha=alpha, generator=torch.Generator().manual_seed(3))
    assert isinstance(out.lam, float) and 0.0 <= out.lam <= 1.0
    # Targets stay class indices, never mixed.
    assert out.target_a is targets and out.target_b.dtype == torch.int64
    assert sorted(out.target_b.tolist()) == targets.tolist()
    perm = out.target_b // 7
    torch.testing.assert_close(out.images, out.lam * images + (1 - out.lam) * images[perm])
    assert out.images.shape == images.shape


def test_same_seed_same_mix():
    images, targets = _batch(16)
    a = mixup(images, targets, alpha=1.0, generator=torch.Generator().manual_seed(42))
    b = mixup(images, targets, alpha=1.0, generator=torch.Generator().manual_seed(42))
    c = mixup(images, targets, alpha=1.0, generator=torch.Generator().manual_seed(43))
    assert a.lam == b.lam and torch.equal(a.target_b, b.target_b) and torch.equal(a.images, b.images)
    assert a.lam != c.lam


@pytest.mark.parametrize("alpha", [1.0, 0.2, 0.01])
def test_lam_follows_beta_alpha_alpha(alpha):
    g = torch.Generator().manual_seed(0)
    draws = [sample_beta(alpha, g) for _ in range(4000)]
    assert min(draws) >= 0.0 and max(draws) <= 1.0
    assert sum(draws) / len(draws) == pytest.approx(0.5, abs=0.03)
    # Against scipy's Beta on the lower half, where doubles resolve the mass that small alphas pile
    # at the edges (near 1, 1 - 1e-30 rounds to 1 - 1e-16); the mean above checks the symmetry.
    lower = [x for x in draws if x < 0.5]
    assert stats.kstest(lower, lambda x: 2 * stats.beta.cdf(x, alpha, alpha)).pvalue > 1e-3
