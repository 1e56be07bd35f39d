"""asrtools: streaming transducer ASR and speaker-cohort fairness experiments.

The library holds every experiment step as a function; `asrtools.cli` exposes each step
as a click subcommand, and recipes under egs/ chain those subcommands as resumable stages
(see docs/ARCHITECTURE.md).
"""

__version__ = "0.1.0"
