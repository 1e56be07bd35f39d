"""asrtools.decoding."""
