"""Inference: which images to segment, the predictor, decoding, the shard loop, clean-up, outputs and manifests."""
