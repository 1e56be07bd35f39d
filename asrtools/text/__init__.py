"""asrtools.text."""
