"""asrtools.training."""
