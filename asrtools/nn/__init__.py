"""asrtools.nn."""
