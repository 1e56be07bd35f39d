"""Result pages built from stage artifacts (JSON) only: the layer above scoring.

`amortized`: the page of the compute-amortized Transformer recipe (egs/synth/amortized).
"""
