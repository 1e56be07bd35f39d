"""Streaming decoding of the two-channel multi-talker transducer into timed turns.

Every channel of every conversation is one greedy-search stream (the channels are
stacked channel-major into the batch, as in training), sharing the prediction network and
joiner. `decode_channels` feeds the features chunk by chunk through the shared encoder
and the channel branches with their carried states (`SeparatorTransducer.
streaming_separate`) and advances `greedy_search_step` on each chunk, recording the
encoder frame of every emission; with `chunk_frames=None` the whole conversation is
encoded at once (identical output for a causal encoder). `decode_turns` rebuilds each
channel's turns from the emitted `<sot>`/`<eot>` (or speaker-change) tokens with their
emission times (`asrtools.data.turns.turns_from_tokens`).

`run_multitalker_decoding` is the `asrtools decode` stage body for a multi-talker
checkpoint: `turns.jsonl` (per conversation: reference and hypothesis turns, per-channel
token ids and emission frames, overlap ratios) and `summary.json`; resumable per shard.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrtools.data.cuts import ConversationDataset
from asrtools.data.turns import Turn, assign_channels, overlap_ratio, turns_from_tokens, turns_of_cut
from asrtools.decoding.greedy import greedy_search_step, init_greedy_state
from asrtools.decoding.streaming import check_chunk_frames
from asrtools.models.loading import MULTITALKER, load_model
from asrtools.models.sts import SeparatorTransducer
from asrtools.pipeline import StageContext, atomic_write_json, atomic_write_text
from asrtools.text.tokenizer import Tokenizer

PARTS_DIR = ".parts"


def load_sts_model(checkpoint: Path, device: torch.device = torch.device("cpu")) -> Tuple[SeparatorTransducer, Dict[str, Any]]:
    """Rebuild a multi-talker model from a checkpoint of the `sts` task.

    Returns:
      The model in eval mode and the checkpoint's metadata (turn_scheme, frame_seconds, ...).
    """
    loaded = load_model(checkpoint, device, expect=(MULTITALKER,))
    meta = {k: loaded.meta[k] for k in ("turn_scheme", "frame_seconds", "vocab_size") if k in loaded.meta}
    meta["feature_dim"] = loaded.config.feature_dim
    return loaded.model, meta


@torch.no_grad()
def decode_channels(model: SeparatorTransducer, features: torch.Tensor, feature_lens: torch.Tensor,
                    chunk_frames: Optional[int] = None) -> Tuple[List[List[int]], List[List[int]], torch.Tensor]:
    """Greedy-decode every channel of a batch of conversations.

    Args:
      model: the multi-talker model in eval mode.
      features: (B, T, F) padded features.
      feature_lens: (B,) int64 valid frames.
      chunk_frames: input frames per streaming chunk (a multiple of the encoder's chunk
        multiple), or None to encode whole conversations.

    Returns:
      (tokens, frames, encoder_lens): K*B channel-major token lists and their emission
      frames, and (B,) int64 encoder frames per conversation.
    """
    batch, device = features.size(0), features.device
    state = init_greedy_state(model, model.num_channels * batch, device)
    if chunk_frames is None:
        channels, lens = model.separate(features, feature_lens)
        greedy_search_step(model, channels, lens.repeat(model.num_channels), state)
    else:
        check_chunk_frames(model.encoder, chunk_frames)
        states = model.init_states(batch, device)
        lens = torch.zeros(batch, dtype=torch.int64, device=device)
        for start in range(0, features.size(1), chunk_frames):
            chunk = features[:, start : start + chunk_frames]
            chunk_lens = (feature_lens - start).clamp(min=0, max=chunk.size(1))
            channels, out_lens, states = model.streaming_separate(chunk, chunk_lens, states)
            greedy_search_step(model, channels, out_lens.repeat(model.num_channels), state)
            lens += out_lens
    return state.hyps(model.decoder.context_size), state.frames, lens


def decode_turns(model: SeparatorTransducer, tokenizer: Tokenizer, features: torch.Tensor,
                 feature_lens: torch.Tensor, scheme: str, frame_seconds: float,
                 chunk_frames: Optional[int] = None) -> List[List[Turn]]:
    """Hypothesis turns (both channels, sorted by start) of each conversation of a batch.

    Args:
      model, features, feature_lens, chunk_frames: as `decode_channels`.
      tokenizer: the model's BPE tokenizer.
      scheme: the model's turn scheme ("sot_eot" or "speaker_change").
      frame_seconds: duration of one encoder frame.
    """
    tokens, frames, lens = decode_channels(model, features, feature_lens, chunk_frames)
    batch = features.size(0)
    out = []
    for b in range(batch):
        turns: List[Turn] = []
        for k in range(model.num_channels):
            i = k * batch + b
            turns += turns_from_tokens(tokens[i], frames[i], frame_seconds, tokenizer.decode, tokenizer.sot_id,
                                       tokenizer.eot_id, scheme, k, end_time=float(lens[b]) * frame_seconds)
        out.append(sorted(turns, key=lambda t: (t.start, t.end)))
    return out


def conversation_record(cut: Any, hyp_turns: List[Turn], tokens: List[List[int]], frames: List[List[int]],
                        seconds: float, target_overlap: Optional[float]) -> Dict[str, Any]:
    """One line of turns.jsonl."""
    ref = assign_channels(turns_of_cut(cut), name=f"cut {cut.id}", overflow=True)  # recorded corpora: 3 talkers
    return {
        "cut_id": cut.id,
        "duration": round(float(cut.duration), 4),
        "target_overlap": target_overlap,
        "overlap_ratio": round(overlap_ratio(ref), 4),
        "ref": [t.to_dict() for t in ref],
        "hyp": [t.to_dict() for t in hyp_turns],
        "channels": [{"tokens": tok, "frames": fr} for tok, fr in zip(tokens, frames)],
        "decode_seconds": round(seconds, 6),
    }


def _decode_shard(model: SeparatorTransducer, tokenizer: Tokenizer, cuts: CutSet, meta: Dict[str, Any],
                  chunk_frames: Optional[int], max_duration: float, device: torch.device,
                  targets: Dict[str, float]) -> List[Dict[str, Any]]:
    sampler = SimpleCutSampler(cuts.sort_by_duration(ascending=False), max_duration=max_duration) \
        if max_duration > 0 else SimpleCutSampler(cuts, max_cuts=1)
    dataset, records = ConversationDataset(), {}
    scheme, frame_seconds = meta["turn_scheme"], float(meta["frame_seconds"])
    K = model.num_channels
    for batch_cuts in sampler:
        batch = dataset[batch_cuts]
        start = time.perf_counter()
        features, feature_lens = batch["features"].to(device), batch["feature_lens"].to(device)
        tokens, frames, lens = decode_channels(model, features, feature_lens, chunk_frames)
        seconds = time.perf_counter() - start
        B = features.size(0)
        total = max(int(feature_lens.sum()), 1)
        for b, cut_id in enumerate(batch["cut_ids"]):
            hyp: List[Turn] = []
            for k in range(K):
                i = k * B + b
                hyp += turns_from_tokens(tokens[i], frames[i], frame_seconds, tokenizer.decode, tokenizer.sot_id,
                                         tokenizer.eot_id, scheme, k, end_time=float(lens[b]) * frame_seconds)
            hyp.sort(key=lambda t: (t.start, t.end))
            share = seconds * int(feature_lens[b]) / total
            records[cut_id] = conversation_record(cuts[cut_id], hyp, [tokens[k * B + b] for k in range(K)],
                                                  [frames[k * B + b] for k in range(K)], share, targets.get(cut_id))
    return [records[c.id] for c in cuts]


def run_multitalker_decoding(ctx: StageContext, model: SeparatorTransducer, meta: Dict[str, Any],
                             tokenizer: Tokenizer, cuts: CutSet, chunk_frames: Optional[int], max_duration: float,
                             device: torch.device, targets: Dict[str, float], shard_size: int = 100) -> Dict[str, Any]:
    """Stage body: decode every unfinished shard, then write turns.jsonl and summary.json.

    Args:
      ctx: the stage context.
      model, meta: from `load_sts_model`.
      tokenizer: the model's BPE tokenizer.
      cuts: conversation cuts with features.
      chunk_frames: streaming chunk (input frames), or None for whole conversations.
      max_duration: seconds of audio per batch (0 = one conversation at a time).
      device: where the model is.
      targets: conversation id -> target overlap ratio (from the simulation plan).
      shard_size: conversations per resumable shard.
    """
    parts = ctx.out_dir / PARTS_DIR
    parts.mkdir(exist_ok=True)
    cut_list = list(cuts)
    records: List[Dict[str, Any]] = []
    shards = [CutSet.from_cuts(cut_list[i : i + shard_size]) for i in range(0, len(cut_list), shard_size)]
    for index, shard in enumerate(shards):
        part = parts / f"part-{index:05d}.jsonl"
        if part.is_file():
            shard_records = [json.loads(line) for line in part.read_text().splitlines()]
        else:
            shard_records = _decode_shard(model, tokenizer, shard, meta, chunk_frames, max_duration, device, targets)
            atomic_write_text(part, "".join(json.dumps(r) + "\n" for r in shard_records))
        records.extend(shard_records)
        ctx.log.info("decoded shard %d/%d (%d conversations)", index + 1, len(shards), len(records))
    atomic_write_text(ctx.out_dir / "turns.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    audio = sum(r["duration"] for r in records)
    spent = sum(r["decode_seconds"] for r in records)
    summary = {
        "method": "streaming_greedy" if chunk_frames else "greedy",
        "chunk_frames": chunk_frames,
        "turn_scheme": meta["turn_scheme"],
        "num_conversations": len(records),
        "audio_seconds": round(audio, 3),
        "decode_seconds": round(spent, 3),
        "real_time_factor": round(spent / audio, 5) if audio > 0 else None,
    }
    atomic_write_json(ctx.out_dir / "summary.json", summary)
    shutil.rmtree(parts)
    return summary
