"""`asrtools train`: train a model (transducer, speaker embedding, ...) from a YAML config (a resumable stage)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click

from asrtools.cli.options import config_options, force_option, train_config_loader


@click.command("train")
@config_options(train_config_loader)
@click.option("--cuts-train", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Training CutSet with precomputed features (jsonl.gz).")
@click.option("--cuts-dev", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Dev CutSet for the per-epoch validation loss.")
@click.option("--bpe-model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="sentencepiece model from `asrtools bpe train` (tasks that predict tokens, e.g. transducer).")
@click.option("--exp-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Experiment directory (checkpoints, averaged.pt, tensorboard/).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Train on CPU or on CUDA (one GPU per torchrun process).")
@click.option("--init-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from this checkpoint's model weights (fine-tuning; a fingerprinted input).")
@force_option
def train(config_path: Optional[Path], overrides: Tuple[str, ...], cuts_train: Path, cuts_dev: Path,
          bpe_model: Optional[Path], exp_dir: Path, device: str, init_from: Optional[Path], force: bool) -> None:
    """Train a model (the config's `task:`, default a pruned RNN-T transducer); rerun after a crash to resume exactly.

    The exp dir is a stage: with the same config and inputs a finished run is skipped and
    a killed one continues from its last checkpoint (bit-identical result on CPU). Under
    torchrun (one process per rank; gloo on CPU, nccl on GPU) rank 0 owns the stage.

    \b
    Example:
      asrtools train --config conf/train_lstm.yaml \\
        --cuts-train data/fbank/cuts_train.jsonl.gz --cuts-dev data/fbank/cuts_dev.jsonl.gz \\
        --bpe-model data/lang_bpe/bpe.model --exp-dir exp/lstm --set num_epochs=5
      asrtools train --config egs/synth/sv/conf/train_ecapa.yaml --cuts-train data/fbank/cuts_train.jsonl.gz \\
        --cuts-dev data/fbank/cuts_dev.jsonl.gz --exp-dir exp/ecapa
      asrtools train --show-config --set task=transducer --set num_epochs=5
      (multi-GPU: torchrun --nproc_per_node=2 --no-python asrtools train ... --device cuda)
    """
    from asrtools.data.cuts import check_cuts_file
    from asrtools.pipeline import current_stage_mode
    from asrtools.training.config import load_train_config
    from asrtools.training.trainer import TrainPaths, run_training

    config = load_train_config(config_path, overrides)
    check_cuts_file(cuts_train, "--cuts-train")  # a wrong kind of manifest fails here, not mid-stage
    check_cuts_file(cuts_dev, "--cuts-dev")
    if config.task == "transducer" and bpe_model is None:
        from asrtools.errors import ConfigError

        raise ConfigError("the transducer task needs a BPE model (--bpe-model)")
    if current_stage_mode().check:
        # The device is not part of the training fingerprint: `asrtools --check` on a submit
        # host without a GPU fingerprints the same stage on the CPU.
        device = "cpu"
    paths = TrainPaths(cuts_train, cuts_dev, bpe_model, exp_dir, init_from=init_from)
    run_training(config, paths, device=device, force=force)
