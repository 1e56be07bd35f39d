"""asrtools.fairness: find the speaker cohorts a recogniser under-serves, and measure them honestly.

- `speakers`: `SpeakerTable` (per-speaker errors/words/utterances + speakers.csv attributes
  + the zip-code census table + optional embeddings).
- `partition`: best binary partition by pooled WER and its selection-aware permutation test.
- `geo`, `geodemographic`, `auto`: the discovery methods, each `fit(table, cfg, thresholds,
  seed) -> Discovery` (`discovery`: ranked cohorts, `assign`, JSON round trip).
- `crossfit`: K-fold speaker cross-fitting, dev-discover/test-measure, in-sample, `measure`.
- `study`: one method fitted and measured; `report`, `plots`: its artifacts; `assign`:
  a discovery.json applied to other speakers.
- `config`: the `asrtools cohorts` configuration.
"""
