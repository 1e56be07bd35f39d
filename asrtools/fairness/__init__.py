"""asrtools.fairness."""
