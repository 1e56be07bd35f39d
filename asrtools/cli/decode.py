"""`asrtools decode`: decode cuts with a trained transducer (a resumable stage)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import click

from asrtools.cli.options import force_option


@click.command("decode")
@click.option("--exp-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Experiment directory of `asrtools train` (backend torch).")
@click.option("--checkpoint", default="averaged.pt", show_default=True,
              help="Checkpoint file, relative to --exp-dir unless it is an existing path.")
@click.option("--cuts", "cuts_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CutSet with precomputed features to decode.")
@click.option("--bpe-model", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The sentencepiece model the system was trained with.")
@click.option("--method", type=click.Choice(["greedy", "modified_beam", "streaming_greedy"]), default="greedy",
              show_default=True, help="Search method.")
@click.option("--beam", type=int, default=4, show_default=True, help="Beam of modified_beam.")
@click.option("--max-sym-per-frame", type=int, default=1, show_default=True,
              help="Greedy methods: most symbols emitted per encoder frame.")
@click.option("--chunk-frames", type=int, default=32, show_default=True,
              help="streaming_greedy: input frames per chunk (multiple of the subsampling factor).")
@click.option("--max-duration", type=float, default=100.0, show_default=True,
              help="Seconds of audio per batch; 0 decodes one cut at a time (exact per-cut times).")
@click.option("--shard-size", type=click.IntRange(min=1), default=200, show_default=True,
              help="Cuts per resumable shard (part of the stage fingerprint).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("-j", "--num-jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tasks that decode the shards: local processes (or SLURM array tasks, "
                   "`asrtools --task I`); the result does not depend on it.")
@click.option("--cohort-map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="assignments.json giving each speaker's cohort, for a model with a cohort input "
                   "(`asrtools mitigate cohort-input`); speakers not in it get the explicit cohort '(unknown)' "
                   "(counted in the log).")
@click.option("--backend", type=click.Choice(["torch", "onnx", "sherpa-onnx"]), default="torch", show_default=True,
              help="torch: the checkpoint; onnx: the toolkit's onnxruntime decoder on --model-dir (the cuts' "
                   "features); sherpa-onnx: sherpa-onnx's OnlineRecognizer on --model-dir (the cuts' audio).")
@click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="An `asrtools export onnx` directory (backends onnx and sherpa-onnx).")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="Which files of --model-dir (backends onnx and sherpa-onnx).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Stage directory for recogs.jsonl, ref.trn, hyp.trn, summary.json.")
@force_option
def decode(exp_dir: Optional[Path], checkpoint: str, cuts_path: Path, bpe_model: Path, method: str, beam: int,
           max_sym_per_frame: int, chunk_frames: int, max_duration: float, shard_size: int, device: str,
           num_jobs: int, cohort_map: Optional[Path], backend: str, model_dir: Optional[Path], precision: str,
           out_dir: Path, force: bool) -> None:
    """Decode --cuts and write recogs.jsonl plus sclite ref.trn / hyp.trn.

    Utterance ids in the trn files are `<speaker>-<cut id>` (sclite -i rm). Score them with
    `asrtools score wer`. A multi-talker checkpoint (task sts) decodes conversation cuts
    (greedy or streaming_greedy, every channel) into turns.jsonl instead, with the target
    overlap ratios of a conversations_<split>.jsonl found beside the cuts (else the
    `target_overlap` the supervisions carry, e.g. LibriCSS's); score it with
    `asrtools score multitalker`.

    \b
    Example:
      asrtools decode --exp-dir exp/lstm --checkpoint averaged.pt \\
        --cuts data/fbank/cuts_test.jsonl.gz --bpe-model data/lang_bpe/bpe.model \\
        --method streaming_greedy --chunk-frames 32 --out-dir exp/lstm/decode_test_streaming -j 4
      asrtools decode --backend sherpa-onnx --model-dir exp/lstm/onnx --cuts data/fbank/cuts_test.jsonl.gz \
        --bpe-model data/lang_bpe/bpe.model --method streaming_greedy --out-dir exp/lstm/decode_test_sherpa
    """
    import torch

    from asrtools.data.cuts import check_features, load_cuts
    from asrtools.decoding.recognize import DecodeOptions, DecodeWork, load_model
    from asrtools.decoding.streaming import check_chunk_frames
    from asrtools.errors import ConfigError
    from asrtools.pipeline.sharding import run_sharded_stage
    from asrtools.text.tokenizer import Tokenizer

    options = DecodeOptions(method=method, beam=beam, max_sym_per_frame=max_sym_per_frame,
                            chunk_frames=chunk_frames, max_duration=max_duration, shard_size=shard_size)
    options.validate()
    if backend != "torch":
        from asrtools.export.decode import OnnxDecodeOptions, run_exported_decode

        if model_dir is None or cohort_map is not None or device != "cpu":
            raise ConfigError(f"--backend {backend} needs --model-dir and runs on the CPU without --cohort-map")
        options.max_duration = 0.0  # one cut at a time
        run_exported_decode(model_dir, cuts_path, bpe_model, options, OnnxDecodeOptions(backend, precision),
                            out_dir, num_jobs, force)
        return
    if exp_dir is None and not Path(checkpoint).is_file():
        raise ConfigError(f"--checkpoint {checkpoint} is not a file: give --exp-dir (or the checkpoint's path)")
    ckpt_path = Path(checkpoint) if Path(checkpoint).is_file() else exp_dir / checkpoint
    if _checkpoint_task(ckpt_path) == "sts":
        _decode_multitalker(ckpt_path, cuts_path, bpe_model, options, device, out_dir, force)
        return

    def checked_model(torch_device, cuts):
        """The model and tokenizer, after checking they fit each other, the options and the cuts."""
        if torch_device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        tokenizer = Tokenizer(bpe_model)
        model, model_config = load_model(ckpt_path, torch_device)
        if model.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"{bpe_model} has {tokenizer.vocab_size} tokens but {ckpt_path} was trained "
                              f"with {model.vocab_size}")
        if options.method == "streaming_greedy":
            check_chunk_frames(model.encoder, options.chunk_frames, "--chunk-frames")
        check_features(cuts, model_config.feature_dim, "cuts")
        _attach_cohorts(model, cohort_map, cuts)
        return model, tokenizer

    def load(cuts):  # in the process that decodes (a merge-only run loads nothing)
        return (*checked_model(torch.device(device), cuts), torch.device(device))

    def validate() -> None:  # at the door, before the stage directory is touched
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda: no CUDA device is available")
        checked_model(torch.device("cpu"), load_cuts(cuts_path, "cuts"))

    def plan(ctx) -> DecodeWork:
        return DecodeWork(ctx.out_dir, load_cuts(cuts_path, "cuts"), options, load)

    inputs = {"checkpoint": ckpt_path, "cuts": cuts_path, "bpe_model": bpe_model}
    if cohort_map is not None:
        inputs["cohort_map"] = cohort_map
    run_sharded_stage(out_dir, "decode", dataclasses.asdict(options), inputs, plan, num_jobs, force=force,
                      validate=validate)


def _attach_cohorts(model, cohort_map: Optional[Path], cuts) -> None:
    """Give a cohort-input model its speakers' cohorts from --cohort-map (checked against the cuts)."""
    from asrtools.data.cuts import cut_speaker
    from asrtools.errors import ConfigError
    from asrtools.data.assignments import read_assignments
    from asrtools.models.enc_cohort_input import attach_cohort_map, has_cohort_input
    from asrtools.scoring.io import check_cohort_map

    if cohort_map is None:
        if has_cohort_input(model):
            raise ConfigError("this model has a cohort input: give the speakers' cohorts with --cohort-map")
        return
    import logging

    from asrtools.models.enc_cohort_input import cohort_coverage

    cohorts = read_assignments(cohort_map).cohorts
    speakers = [cut_speaker(c) for c in cuts]
    check_cohort_map({spk: {"cohort": c} for spk, c in cohorts.items()}, speakers, cohort_map)
    attach_cohort_map(model, cohorts)
    coverage = cohort_coverage(cohorts, speakers)
    if coverage.unknown_speakers:
        logging.getLogger("asrtools").warning(coverage.describe("decode", str(cohort_map)))


def _checkpoint_task(path: Path) -> str:
    """The training task that wrote a checkpoint ("transducer" for files without one)."""
    from asrtools.models.checkpoint import load_checkpoint

    if not path.is_file():
        return "transducer"  # the stage reports the missing input
    return str(load_checkpoint(path).get("task", "transducer"))


def plan_beside(cuts_path: Path) -> Path:
    """`conversations_<split>.jsonl` beside `cuts_<split>.jsonl.gz` (written by `asrtools data mix`)."""
    name = cuts_path.name
    split = name[len("cuts_"):].split(".")[0] if name.startswith("cuts_") else name.split(".")[0]
    return cuts_path.parent / f"conversations_{split}.jsonl"


def _decode_multitalker(ckpt_path: Path, cuts_path: Path, bpe_model: Path, options, device: str, out_dir: Path,
                        force: bool) -> None:
    import torch

    from asrtools.data.conversations import conversation_info, supervision_targets
    from asrtools.data.cuts import check_features, load_cuts
    from asrtools.decoding.multitalker import load_sts_model, run_multitalker_decoding
    from asrtools.errors import ConfigError
    from asrtools.pipeline import run_stage
    from asrtools.text.tokenizer import Tokenizer

    if options.method not in ("greedy", "streaming_greedy"):
        raise ConfigError(f"--method {options.method}: a multi-talker model decodes with greedy or streaming_greedy")
    chunk = options.chunk_frames if options.method == "streaming_greedy" else None
    plan = plan_beside(cuts_path)
    inputs = {"checkpoint": ckpt_path, "cuts": cuts_path, "bpe_model": bpe_model}
    if plan.is_file():
        inputs["plan"] = plan

    def body(ctx) -> None:
        torch_device = torch.device(device)
        tokenizer = Tokenizer(bpe_model)
        model, meta = load_sts_model(ckpt_path, torch_device)
        if model.vocab_size != tokenizer.vocab_size:
            raise ConfigError(f"{bpe_model} has {tokenizer.vocab_size} tokens but {ckpt_path} was trained "
                              f"with {model.vocab_size}")
        cuts = load_cuts(cuts_path, "cuts")
        check_features(cuts, meta["feature_dim"], "cuts")
        targets = {k: v["target_overlap"] for k, v in conversation_info(plan).items()} if plan.is_file() \
            else supervision_targets(cuts)  # a recorded corpus (LibriCSS) carries them on its supervisions
        summary = run_multitalker_decoding(ctx, model, meta, tokenizer, cuts, chunk, options.max_duration,
                                           torch_device, targets)
        ctx.log.info("decoded %d conversations, RTF %s", summary["num_conversations"], summary["real_time_factor"])

    from asrtools.data.turns import TURNS_FORMAT

    params = {"method": options.method, "chunk_frames": chunk, "max_duration": options.max_duration,
              "max_sym_per_frame": options.max_sym_per_frame, "turns_format": TURNS_FORMAT}
    run_stage(out_dir, "decode multitalker", params, inputs, body, force=force)
