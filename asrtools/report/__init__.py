"""Result pages built from stage artifacts (JSON) only: the layer above scoring.

A page (`asrtools report results`, egs/synth/asr stage 7) is configured by a YAML file
(`asrtools.report.config`): the artifacts each system run has (wer.json, info.json, ...; their
kinds in `asrtools.report.artifacts`) and the page's sections (`asrtools.report.sections`:
a metrics table, a pairwise comparison, ...). `asrtools.report.data` loads the artifacts of
every system (a system may be several runs, e.g. seeds), `asrtools.report.page` assembles the
Markdown page and its JSON twin with the Sources and the Provenance of every number. Nothing
here loads a model or scores recognitions: stages do that and write JSON; a recipe with a new
kind of result registers an artifact kind and a section kind here.

`amortized`: the page of the compute-amortized Transformer recipe (egs/synth/amortized).
`markdown`: rewrites one `## ` section of a generated page (the benchmark scripts' docs/benchmarks.md).
"""
