"""asrtools.losses: training losses.

`asrtools.losses.rnnt` holds the (pruned) RNN-T loss with k2's API on a k2 or native backend.
"""
from asrtools.losses.rnnt import (
    do_rnnt_pruning,
    get_rnnt_prune_ranges,
    mutual_information_recursion,
    rnnt_loss,
    rnnt_loss_pruned,
    rnnt_loss_simple,
    rnnt_loss_smoothed,
)

__all__ = [
    "do_rnnt_pruning",
    "get_rnnt_prune_ranges",
    "mutual_information_recursion",
    "rnnt_loss",
    "rnnt_loss_pruned",
    "rnnt_loss_simple",
    "rnnt_loss_smoothed",
]
