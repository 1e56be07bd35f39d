"""asrtools.data.synth."""
