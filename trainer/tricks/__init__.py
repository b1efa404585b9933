"""The Bag-of-Tricks refinements, one module each: schedules, losses (label smoothing, distillation),
mixup; ``recipe.Tricks`` puts a run's tricks together for the training loop."""
