"""The tiny study of the end-to-end and browser tests."""

# Every run of the end-to-end study trains in seconds on a CPU.
TINY = {
    "model.arch": "resnet18",
    "model.pretrained": False,
    "data.image_size": 32,
    "data.num_workers": 0,
    "epochs": 1,
    "batch_size": 16,
}
# Two switches, one of them distillation (so teachers are added, shared and waited for), two seeds.
TINY_GRID = {"cosine": True, "kd": True}
TINY_SEEDS = 2
# The groups the grid makes, in the table's order: the teacher first, then the baseline.
TINY_GROUPS = ["T", "base", "+KD", "+Cosine", "+Cosine +KD"]
