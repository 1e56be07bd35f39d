"""Run under torchrun by tests/test_train.py: record what each DDP rank trains on.

    torchrun --nproc_per_node=2 tests/ddp_worker.py CONFIG CUTS_TRAIN CUTS_DEV BPE OUT_DIR

Each rank trains with `Trainer` (the config decides how long), records the cut ids of every
batch it consumed and, after its first optimizer step, the gradients it applied (DDP's
average over ranks), and writes them to OUT_DIR/rank-<r>.pt.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from asrtools.training.config import load_train_config
from asrtools.training.distributed import cleanup_distributed, setup_distributed
from asrtools.training.trainer import Trainer, TrainPaths


def main() -> None:
    config_path, cuts_train, cuts_dev, bpe, out_dir = (Path(a) for a in sys.argv[1:6])
    torch.set_num_threads(1)
    info = setup_distributed("cpu")
    config = load_train_config(config_path)
    exp_dir = out_dir / f"exp-{info.rank}"
    exp_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(config, TrainPaths(cuts_train, cuts_dev, bpe, exp_dir), info)
    batches = []
    first_grads = {}
    step = trainer.train_step

    def recording_step(batch):
        stats = step(batch)
        batches.append(list(batch["cut_ids"]))
        if not first_grads:
            first_grads.update({n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()
                                if p.grad is not None})
        return stats

    trainer.train_step = recording_step
    try:
        trainer.run()
    finally:
        torch.save({"batches": batches, "grads": first_grads}, out_dir / f"rank-{info.rank}.pt")
        cleanup_distributed()


if __name__ == "__main__":
    main()
