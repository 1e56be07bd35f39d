"""asrtools.losses."""
