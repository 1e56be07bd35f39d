"""Corpora a user already has on disk -> toolkit manifests + speaker table (`asrtools data prepare`).

`base` holds the seam (`CorpusRecipe`, `PreparedCorpus`, the registry), `stage` the stage
that runs any adapter, `speaker_table` attribute normalisation and speakers.csv. Each
adapter module registers itself on import; the imports below make them all available
(a new adapter module is added to them).
"""
from __future__ import annotations

from asrtools.data.corpora.base import (
    CORPORA,
    CorpusRecipe,
    PreparedCorpus,
    PrepareOptions,
    get_corpus,
    register_corpus,
)
from asrtools.data.corpora import commonvoice, kaldi, libricss, librispeech, table, vctk, voxceleb  # noqa: F401

__all__ = ["CORPORA", "CorpusRecipe", "PreparedCorpus", "PrepareOptions", "get_corpus", "register_corpus"]
