"""asrtools.data."""
