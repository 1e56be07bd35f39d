"""asrtools.scoring."""
