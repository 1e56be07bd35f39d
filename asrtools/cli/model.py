"""`asrtools model ...`: inspect models: parameters and FLOPs (a stage writing info.json), streaming real-time factor."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import click

from asrtools.cli.options import force_option, show_config_option, split_named, train_config_loader


@click.group("model")
def model() -> None:
    """Inspect models: parameters, FLOPs, streaming real-time factor."""


@model.command("info")
@click.argument("config_path", metavar="[CONF.yaml]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Measure a trained model (architecture and vocabulary from the checkpoint) instead of CONF.yaml.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config value, e.g. --set model.encoder_params.num_layers=2 (repeatable).")
@show_config_option(train_config_loader)
@click.option("--vocab-size", type=click.IntRange(min=2), default=None,
              help="Output vocabulary size V of a CONF.yaml model (sizes the decoder and joiner)  [default: 500].")
@click.option("--depth", type=click.IntRange(min=1), default=2, show_default=True,
              help="Deepest module level listed in the table.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Duration of the random utterance the FLOPs are measured on.")
@click.option("--frame-shift", type=click.FloatRange(min=1e-4), default=0.01, show_default=True,
              help="Seconds per input feature frame.")
@click.option("--chunk-frames", type=click.IntRange(min=0), default=0,
              help="Streaming chunk in input frames (0: the smallest valid chunk >= 32 frames).")
@click.option("--json", "as_json", is_flag=True, help="Print the info.json document instead of a table.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Run as a resumable stage: write info.json (read by `asrtools report results`) and info.txt here.")
@force_option
def info(config_path: Optional[Path], checkpoint: Optional[Path], overrides: Tuple[str, ...],
         vocab_size: Optional[int], depth: int, seconds: float, frame_shift: float, chunk_frames: int,
         as_json: bool, out_dir: Optional[Path], force: bool) -> None:
    """Parameters per module and encoder GFLOPs per second of audio of a config or checkpoint.

    FLOPs are 2 x multiply-adds, counted with torch's FlopCounterMode (LSTM layers
    analytically) on a seeded random utterance; a streaming encoder is measured through
    `streaming_forward` chunk by chunk, and its whole-utterance cost is given as well.
    With --out-dir the measurement is a stage whose info.json (with the provenance of the
    run) the result pages read.

    \b
    Example:
      asrtools model info egs/synth/asr/conf/train_convrnnt.yaml --vocab-size 256
      asrtools model info conf/train_conformer.yaml --set model.encoder_params.chunk_size=16
      asrtools model info --checkpoint exp/lstm/averaged.pt --chunk-frames 32 --out-dir exp/lstm/info
    """
    from asrtools.errors import ConfigError
    from asrtools.pipeline import atomic_write_json, atomic_write_text, run_stage

    if (config_path is None) == (checkpoint is None):
        raise ConfigError("give either a training config CONF.yaml or --checkpoint (not both)")
    if checkpoint is not None and (overrides or vocab_size is not None):
        raise ConfigError("--set and --vocab-size apply to a CONF.yaml model; a --checkpoint carries its own")
    source = checkpoint if checkpoint is not None else config_path
    params = {"checkpoint": str(checkpoint) if checkpoint else None, "config": str(config_path) if config_path else None,
              "overrides": list(overrides), "vocab_size": vocab_size or 500, "depth": depth, "seconds": seconds,
              "frame_shift": frame_shift, "chunk_frames": chunk_frames}
    loaded = {}

    def load() -> None:
        loaded["model"], loaded["encoder"], loaded["feature_dim"], loaded["source"] = _info_model(
            config_path, checkpoint, overrides, vocab_size or 500)

    def measure() -> Tuple[dict, str]:
        import torch

        from asrtools.models.flops import INFO_SCHEMA, INFO_SCHEMA_VERSION, format_info, model_info
        from asrtools.utils.provenance import provenance

        torch.manual_seed(0)
        body, rows = model_info(loaded["model"], loaded["feature_dim"], loaded["encoder"], seconds, frame_shift,
                                chunk_frames or None, depth)
        document = {"schema": INFO_SCHEMA, "version": INFO_SCHEMA_VERSION, "source": loaded["source"], **body,
                    "provenance": provenance()}
        return document, format_info(body, rows, str(source))

    if out_dir is None:
        load()
        document, text = measure()
        click.echo(json.dumps(document, indent=2) if as_json else text)
        return

    def stage_body(ctx) -> None:
        document, text = measure()
        atomic_write_json(ctx.out_dir / "info.json", document)
        atomic_write_text(ctx.out_dir / "info.txt", text + "\n")
        ctx.log.info("%s", text)

    run_stage(out_dir, "model info", params, {"model": source}, stage_body, force=force, validate=load)
    click.echo((out_dir / "info.json").read_text(encoding="utf-8").rstrip() if as_json else f"wrote {out_dir / 'info.json'}")


def _info_model(config_path: Optional[Path], checkpoint: Optional[Path], overrides: Tuple[str, ...],
                vocab_size: int) -> Tuple[object, str, int, dict]:
    """(model, encoder name, feature dim, info.json `source`) of a config or a checkpoint."""
    if checkpoint is not None:
        from asrtools.decoding.recognize import load_model
        from asrtools.models.checkpoint import load_checkpoint

        from asrtools.pipeline import read_marker

        model, config = load_model(checkpoint)
        meta = load_checkpoint(checkpoint, mmap=True)
        training = {key: meta[key] for key in ("epoch", "step", "averaged_from") if key in meta}
        marker = read_marker(checkpoint.parent)
        if marker.get("stage") == "train":  # the run that trained it (None if it predates provenance)
            training["provenance"] = marker.get("provenance")
        return model, config.encoder, config.feature_dim, {"checkpoint": str(checkpoint), "weights": "checkpoint",
                                                           "training": training}
    import torch

    from asrtools.models.build import build_model
    from asrtools.training.config import load_train_config

    config = load_train_config(config_path, overrides).model
    torch.manual_seed(0)
    model = build_model(config, vocab_size)
    return model, config.encoder, config.feature_dim, {"config": str(config_path), "overrides": list(overrides),
                                                       "weights": "random"}


def _named_paths(option: str, specs: Tuple[str, ...]) -> List[Tuple[str, Path]]:
    """`[NAME=]PATH` values of a repeatable option; a bare path is named after its directory."""
    named = []
    for spec in specs:
        name, path = split_named(option, spec, allow_bare=True)
        named.append((name or Path(path).parent.name or Path(path).stem, Path(path)))
    return named


@model.command("rtf")
@click.option("--checkpoint", "checkpoints", multiple=True, metavar="[NAME=]CKPT",
              help="A trained model (repeatable); NAME defaults to the checkpoint's directory.")
@click.option("--config", "configs", multiple=True, metavar="NAME=CONF.yaml",
              help="The model of a training config with seeded random weights (repeatable).")
@click.option("--vocab-size", type=click.IntRange(min=2), default=256, show_default=True,
              help="Vocabulary of --config models.")
@click.option("--cuts", "cuts_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CutSet with precomputed features; a seeded sample of --num-utts cuts is decoded "
                   "(default: synthetic features of log-normal durations, median 6 s).")
@click.option("--num-utts", type=click.IntRange(min=1), default=50, show_default=True,
              help="Utterances decoded per model.")
@click.option("--chunk-frames", type=click.IntRange(min=0), default=0, show_default=True,
              help="Input frames per chunk (0: each encoder's smallest valid chunk >= 32 frames).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the cut sample and random weights.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for rtf.json (read by `asrtools report results --input rtf=...`) and rtf.md.")
@force_option
def rtf(checkpoints: Tuple[str, ...], configs: Tuple[str, ...], vocab_size: int, cuts_path: Optional[Path],
        num_utts: int, chunk_frames: int, seed: int, out_dir: Path, force: bool) -> None:
    """Real-time factor of streaming greedy decoding, one stream on one CPU thread.

    Decodes the same utterances with each model chunk by chunk (`asrtools decode --method
    streaming_greedy`'s code path, batch 1, `torch.set_num_threads(1)`) and reports RTF
    (mean, p90, CPU time), per-chunk wall time and its encoder share, and the latency
    (chunk + look-ahead). Wall times carry the machine's other load: measure on idle cores.

    \b
    Example:
      asrtools model rtf --checkpoint lstm=exp/lstm/averaged.pt \\
        --checkpoint convrnnt=exp/convrnnt/averaged.pt --cuts data/fbank/cuts_test.jsonl.gz \\
        --chunk-frames 32 --out-dir exp/rtf_streaming
    """
    import shlex

    from asrtools.decoding import rtf as rtf_lib
    from asrtools.errors import ConfigError
    from asrtools.pipeline import atomic_write_json, atomic_write_text, run_stage
    from asrtools.training.config import load_train_config

    named_checkpoints = _named_paths("--checkpoint", checkpoints)
    named_configs = _named_paths("--config", configs)
    if not named_checkpoints and not named_configs:
        raise ConfigError("give at least one --checkpoint or --config")
    inputs = {f"checkpoint.{name}": path for name, path in named_checkpoints}
    inputs.update({f"config.{name}": path for name, path in named_configs})
    if cuts_path is not None:
        inputs["cuts"] = cuts_path
    params = {"checkpoints": [[n, str(p)] for n, p in named_checkpoints],
              "configs": [[n, str(p)] for n, p in named_configs], "vocab_size": vocab_size,
              "num_utts": num_utts, "chunk_frames": chunk_frames, "seed": seed}
    args = ([f"--checkpoint {shlex.quote(c)}" for c in checkpoints] + [f"--config {shlex.quote(c)}" for c in configs]
            + ([f"--cuts {shlex.quote(str(cuts_path))}"] if cuts_path else [])
            + [f"--num-utts {num_utts}", f"--chunk-frames {chunk_frames}", f"--seed {seed}",
               f"--out-dir {shlex.quote(str(out_dir))}"])

    loaded = {}

    def load() -> None:
        models = [rtf_lib.checkpoint_model(name, path) for name, path in named_checkpoints]
        models += [rtf_lib.random_model(name, load_train_config(path).model, str(path), vocab_size, seed)
                   for name, path in named_configs]
        rtf_lib.check_unique_names(models)
        for entry in models:
            rtf_lib.chunk_frames_for(entry.model.encoder, chunk_frames)
            rtf_lib.lookahead_frames(entry.model.encoder)
        feature_dim = rtf_lib.common_feature_dim(models)
        loaded["models"] = models
        loaded["utterances"] = rtf_lib.load_utterances(cuts_path, num_utts, seed, feature_dim)

    def body(ctx) -> None:
        models = loaded["models"]
        utterances, frame_shift, input_text = loaded["utterances"]
        results = rtf_lib.measure_all(models, utterances, chunk_frames, frame_shift,
                                      report=lambda line: ctx.log.info("%s", line))
        facts = rtf_lib.run_facts("asrtools model rtf " + " ".join(args), input_text, models)
        atomic_write_json(ctx.out_dir / "rtf.json", rtf_lib.rtf_document(results, facts))
        atomic_write_text(ctx.out_dir / "rtf.md", rtf_lib.rtf_markdown(results, facts))
        ctx.log.info("%s", rtf_lib.target_line(results))

    run_stage(out_dir, "model rtf", params, inputs, body, force=force, validate=load)
    click.echo(f"wrote {out_dir / 'rtf.json'}")
