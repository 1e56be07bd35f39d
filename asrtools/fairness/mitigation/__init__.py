"""Fairness mitigations (METHODS.md §4-§5): EWC fine-tuning on the worst cohorts and its
same-budget baselines, oversampling, cohort-aware input, and their evaluation.

- `asrtools.data.assignments` (below training, which reads it too): reading a cohort discovery's
  `assignments.json` (speaker -> cohort, ranking).
- `fisher`: the diagonal empirical Fisher of a baseline transducer (the `mitigate fisher` stage).
- `finetune`: the fine-tuning stages (config from the baseline, cohort data, penalties).
- `evaluate`: before/after measurement on held-out speakers; `results`: table and trade-off plot.

The training pieces live in `asrtools.training` (penalty: `regularizers.QuadraticAnchor`;
oversampling: `data.oversampled_cuts`; the `mitigation` task: `tasks.mitigation`) and the
cohort input in `asrtools.models.enc_cohort_input`.
"""
