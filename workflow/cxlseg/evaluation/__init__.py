"""Evaluation: every trained model on the test split with the deployment predictor, and the choice of the segmenter."""
