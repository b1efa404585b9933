"""The tiny study of the end-to-end and browser tests."""

from pathlib import Path
from typing import Any

from testlib.models import TINY_ARCH

# Every run of the end-to-end study trains in seconds on a CPU.
TINY = {
    "model.arch": TINY_ARCH,
    "model.pretrained": False,
    "data.image_size": 32,
    "data.num_workers": 0,
    "epochs": 1,
    "batch_size": 16,
}
# Two switches, one of them distillation (so teachers are added, shared and waited for), two seeds.
TINY_GRID = {"cosine": True, "kd": True}
TINY_SEEDS = 2
# The teachers': another architecture than the students' (a run's shows its role), and one that the FLOPs
# table prices (the study has an estimate, which the students' test model alone would not give).
TINY_TEACHER_ARCH = "resnet18"
# The groups the grid makes, in the table's order: the teacher first, then the baseline.
TINY_GROUPS = ["T", "base", "+KD", "+Cosine", "+Cosine +KD"]


def tiny_study_overrides(data_root: Path) -> dict[str, Any]:
    """The tiny study's overrides on ``data_root``: a study posted with them (and TINY_GRID, TINY_SEEDS) reuses
    the tiny study's runs."""
    return {**TINY, "teacher.model.arch": TINY_TEACHER_ARCH, "data.root": str(data_root)}
