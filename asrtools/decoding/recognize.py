"""Decode a CutSet with a trained transducer and write recognitions (the `decode` stage body).

Outputs in the stage directory:
  recogs.jsonl   one JSON object per cut: cut_id, utt_id, speaker, gender, ref, hyp,
                 duration, decode_seconds, custom (the supervision's custom fields)
  ref.trn        sclite trn: `words (utt_id)`, utt_id = `<speaker>-<cut id>` (sclite -i rm)
  hyp.trn        same for the hypotheses
  summary.json   method, options, utterance count, audio and decode seconds, real-time factor,
                 provenance (commit, torch, CPU/GPU, threads: `asrtools.utils.provenance`)

Cuts are decoded in fixed shards of manifest order; each finished shard is written to
`.parts/` atomically, so a killed run resumes after the last finished shard. With batching,
`decode_seconds` is the batch's decoding time shared out by frames; `max_duration=0`
decodes one cut at a time and measures each exactly.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrtools.decoding.beam_search import modified_beam_search
from asrtools.decoding.greedy import greedy_search
from asrtools.decoding.streaming import streaming_greedy_search
from asrtools.errors import ConfigError, DataError
from asrtools.models.build import ModelConfig, build_model, model_config_from_dict
from asrtools.models.transducer import Transducer
from asrtools.pipeline import StageContext, atomic_write_json, atomic_write_text
from asrtools.text.tokenizer import Tokenizer
from asrtools.models.checkpoint import load_checkpoint
from asrtools.data.cuts import AsrDataset, cut_speaker, cut_text
from asrtools.utils.provenance import provenance

METHODS = ("greedy", "modified_beam", "streaming_greedy")
PARTS_DIR = ".parts"


@dataclasses.dataclass
class DecodeOptions:
    """How to decode.

    Attributes:
      method: "greedy", "modified_beam" or "streaming_greedy".
      beam: modified beam search's beam.
      max_sym_per_frame: greedy methods' symbols per frame limit.
      chunk_frames: streaming_greedy's input frames per chunk.
      length_norm: modified beam search ranks final hypotheses by log_prob / length.
      max_duration: seconds of audio per batch (0 = one cut per batch, exact timings).
      shard_size: cuts per resumable shard.
    """

    method: str = "greedy"
    beam: int = 4
    max_sym_per_frame: int = 1
    chunk_frames: int = 32
    length_norm: bool = True
    max_duration: float = 100.0
    shard_size: int = 200

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"decoding method {self.method!r} is unknown (known: {', '.join(METHODS)})")
        if self.beam < 1 or self.max_sym_per_frame < 1 or self.chunk_frames < 1 or self.shard_size < 1:
            raise ConfigError("beam, max_sym_per_frame, chunk_frames and shard_size must be >= 1")
        if self.max_duration < 0:
            raise ConfigError("max_duration must be >= 0")


def load_model(checkpoint: Path, device: torch.device = torch.device("cpu")) -> Tuple[Transducer, ModelConfig]:
    """Build the transducer stored in any model-bearing checkpoint and load its weights.

    Args:
      checkpoint: `averaged.pt`, `final.pt`, `epoch-<n>.pt` or `checkpoint-<step>.pt`.
      device: where to put the model.

    Returns:
      The model in eval mode and its architecture config.
    """
    ckpt = load_checkpoint(checkpoint, map_location=device)
    if "model" not in ckpt or "model_config" not in ckpt:
        raise DataError(f"checkpoint {checkpoint} holds no model (expected keys model, model_config)")
    config = model_config_from_dict(ckpt["model_config"], source=str(checkpoint))
    model = build_model(config, int(ckpt["vocab_size"])).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), config


@torch.no_grad()
def decode_features(model: Transducer, features: torch.Tensor, feature_lens: torch.Tensor,
                    options: DecodeOptions) -> List[List[int]]:
    """Token ids of a batch.

    Args:
      model: the transducer in eval mode.
      features: (B, T, F) padded features.
      feature_lens: (B,) int64 valid frames.
      options: the method and its settings.

    Returns:
      B token-id lists.
    """
    if options.method == "streaming_greedy":
        return streaming_greedy_search(model, features, feature_lens, options.chunk_frames, options.max_sym_per_frame)
    encoder_out, encoder_out_lens = model.encoder(features, feature_lens)
    if options.method == "greedy":
        return greedy_search(model, encoder_out, encoder_out_lens, options.max_sym_per_frame)
    return modified_beam_search(model, encoder_out, encoder_out_lens, options.beam, options.length_norm)


def sclite_utt_id(speaker: str, cut_id: str) -> str:
    """`<speaker>-<cut id>` with characters that break trn parsing replaced by `_`.

    The speaker part has no `-`, so sclite's `-i rm` reads the speaker back correctly.
    """
    speaker_part = re.sub(r"[-\s()]", "_", speaker)
    cut_part = re.sub(r"[\s()]", "_", cut_id)
    return f"{speaker_part}-{cut_part}"


def decode_shard(model: Transducer, tokenizer: Tokenizer, cuts: CutSet, options: DecodeOptions,
                 device: torch.device) -> List[Dict[str, Any]]:
    """Decode `cuts` and return one record per cut, in the order of `cuts`."""
    if options.max_duration > 0:
        sampler = SimpleCutSampler(cuts.sort_by_duration(ascending=False), max_duration=options.max_duration)
    else:
        sampler = SimpleCutSampler(cuts, max_cuts=1)
    dataset = AsrDataset(require_text=False)
    records: Dict[str, Dict[str, Any]] = {}
    for batch_cuts in sampler:
        batch = dataset[batch_cuts]
        finite = torch.isfinite(batch["features"]).flatten(1).all(dim=1)  # (B,); padding is 0
        if not bool(finite.all()):
            bad = batch["cut_ids"][int((~finite).nonzero()[0])]
            raise DataError(f"cut {bad}: its features hold NaN or infinite values")
        start = time.perf_counter()
        ids = decode_features(model, batch["features"].to(device), batch["feature_lens"].to(device), options)
        seconds = time.perf_counter() - start
        frames = batch["feature_lens"].tolist()
        for cut_id, hyp, num_frames in zip(batch["cut_ids"], tokenizer.decode(ids), frames):
            records[cut_id] = recognition_record(cuts[cut_id], hyp, seconds * num_frames / max(sum(frames), 1))
    return [records[cut.id] for cut in cuts]


def recognition_record(cut: Any, hyp: str, seconds: float) -> Dict[str, Any]:
    """One line of recogs.jsonl: ids, speaker, reference, hypothesis, timing, speaker metadata.

    A cut without a supervision or transcript gets the empty reference (scoring then counts
    every hypothesis word as an insertion).

    Args:
      cut: the decoded cut (its first supervision holds the reference and metadata).
      hyp: the hypothesis text (whitespace is normalised).
      seconds: decode time attributed to this cut.
    """
    sup = cut.supervisions[0] if cut.supervisions else None
    speaker = cut_speaker(cut)
    return {
        "cut_id": cut.id,
        "utt_id": sclite_utt_id(speaker, cut.id),
        "speaker": speaker,
        "gender": sup.gender if sup is not None else None,
        "ref": " ".join(cut_text(cut, required=False).split()),
        "hyp": " ".join(hyp.split()),
        "duration": cut.duration,
        "decode_seconds": round(seconds, 6),
        "custom": dict(sup.custom or {}) if sup is not None else {},
    }


def _shards(cuts: CutSet, size: int) -> Iterable[CutSet]:
    cut_list = list(cuts)
    for start in range(0, len(cut_list), size):
        yield CutSet.from_cuts(cut_list[start : start + size])


def run_decoding(ctx: StageContext, model: Transducer, tokenizer: Tokenizer, cuts: CutSet,
                 options: DecodeOptions, device: torch.device) -> Dict[str, Any]:
    """Stage body: decode every shard not yet finished, then write the final files.

    Args:
      ctx: the stage context (`ctx.resumed` keeps finished shards).
      model: the transducer in eval mode.
      tokenizer: the BPE tokenizer the model was trained with.
      cuts: the cuts to decode (with features).
      options: decoding options.
      device: where the model is.

    Returns:
      The summary written to summary.json.
    """
    parts = ctx.out_dir / PARTS_DIR
    parts.mkdir(exist_ok=True)
    records: List[Dict[str, Any]] = []
    shards = list(_shards(cuts, options.shard_size))
    for index, shard in enumerate(shards):
        part = parts / f"part-{index:05d}.jsonl"
        if part.is_file():
            shard_records = [json.loads(line) for line in part.read_text().splitlines()]
        else:
            shard_records = decode_shard(model, tokenizer, shard, options, device)
            atomic_write_text(part, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in shard_records))
        records.extend(shard_records)
        ctx.log.info("decoded shard %d/%d (%d cuts)", index + 1, len(shards), len(records))
    atomic_write_text(ctx.out_dir / "recogs.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    atomic_write_text(ctx.out_dir / "ref.trn", "".join(f"{r['ref']} ({r['utt_id']})\n" for r in records))
    atomic_write_text(ctx.out_dir / "hyp.trn", "".join(f"{r['hyp']} ({r['utt_id']})\n" for r in records))
    audio = sum(r["duration"] for r in records)
    spent = sum(r["decode_seconds"] for r in records)
    summary = {
        "options": dataclasses.asdict(options),
        "num_utterances": len(records),
        "audio_seconds": round(audio, 3),
        "decode_seconds": round(spent, 3),
        "real_time_factor": round(spent / audio, 5) if audio > 0 else None,
        "provenance": provenance(),
    }
    atomic_write_json(ctx.out_dir / "summary.json", summary)
    shutil.rmtree(parts)
    ctx.log.info("decoded %d cuts (%.1f s of audio) in %.1f s, RTF %.4f", len(records), audio, spent,
                 spent / audio if audio > 0 else float("nan"))
    return summary
