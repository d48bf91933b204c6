"""The view check: is a film a frontal chest film? Trained here; inference runs it (`inference/view_check`)."""
