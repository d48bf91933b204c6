"""Quality control of masks without ground truth: features, the predicted-Dice model, its calibration, the view check."""
