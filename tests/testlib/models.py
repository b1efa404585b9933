"""The model the tests train where its size does not matter."""

# timm's test_resnet: a ResNet laid out as the report's (conv1/bn1, layer1..4, fc, so per-stage rates
# apply) with 0.37 M parameters, 30 times fewer than resnet18: its steps take a fraction of the time
# and a run's two checkpoints hold 9 MB, not 270.
TINY_ARCH = "test_resnet"
