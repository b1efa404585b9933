"""What the study tests share (a module of its own: every test folder has a "conftest")."""

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
