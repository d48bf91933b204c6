"""Training: augment to the class targets, the training store, the model registry, the training loop, checkpoints."""
