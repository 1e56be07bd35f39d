"""Decode a CutSet with a trained transducer and write recognitions (the `decode` stage body).

Outputs in the stage directory:
  recogs.jsonl   one JSON object per cut: cut_id, utt_id, speaker, gender, ref, hyp,
                 duration, decode_seconds, custom (the supervision's custom fields)
  ref.trn        sclite trn: `words (utt_id)`, utt_id = the cut id, prefixed `<speaker>-` when
                 it does not already start with the speaker (`sclite_utt_id`)
  hyp.trn        same for the hypotheses
  summary.json   method, options, utterance count, audio and decode seconds, real-time factor,
                 and for an encoder that skips work per frame (e.g. arbitrated Transformer
                 sub-blocks) the executed compute (`encoder_compute`, asrtools.models.compute;
                 each recogs.jsonl line then holds its utterance's counts),
                 and provenance (commit, torch, CPU/GPU, threads: `asrtools.utils.provenance`)

Cuts are decoded in fixed shards of `shard_size` cuts in manifest order (`DecodeWork`, the
units of a sharded stage: `asrtools decode -j N` runs N processes, or N SLURM array tasks);
each finished shard is written to `.parts/part-<k>.jsonl` atomically and is kept by a rerun
only if it holds exactly the cut ids expected for shard k. With batching, `decode_seconds`
is the batch's decoding time shared out by frames; `max_duration=0` decodes one cut at a
time and measures each exactly.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrtools.decoding.beam_search import modified_beam_search
from asrtools.decoding.greedy import greedy_search
from asrtools.decoding.streaming import streaming_greedy_search
from asrtools.errors import ConfigError, DataError
from asrtools.models.build import ModelConfig
from asrtools.models.compute import SUMMARY_KEY, summarize_compute
from asrtools.models.enc_cohort_input import condition_on_speakers
from asrtools.models.transducer import Transducer
from asrtools.pipeline import StageContext, atomic_write_json, atomic_write_text
from asrtools.pipeline.sharding import Progress, ShardedWork, run_work
from asrtools.text.tokenizer import Tokenizer
from asrtools.models.loading import TRANSDUCER
from asrtools.models.loading import load_model as load_any_model
from asrtools.data.cuts import AsrDataset, cut_speaker, cut_text
from asrtools.utils.provenance import provenance

METHODS = ("greedy", "modified_beam", "streaming_greedy")
PARTS_DIR = ".parts"

logger = logging.getLogger("asrtools")

# What a decoding process needs, made where it runs (a forked process must not inherit CUDA
# state): the model in eval mode, its tokenizer and its device, given the cuts to decode.
ModelLoader = Callable[[CutSet], Tuple[Transducer, Tokenizer, torch.device]]


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
    """The transducer of a checkpoint (`asrtools.models.loading.load_model`, transducers only).

    Args:
      checkpoint: `averaged.pt`, `final.pt`, `epoch-<n>.pt` or `checkpoint-<step>.pt`.
      device: where to put the model.

    Returns:
      The model in eval mode and its architecture config.
    """
    loaded = load_any_model(checkpoint, device, expect=(TRANSDUCER,))
    return loaded.model, loaded.config


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
    """The trn id of a cut: the corpus's own id when it already starts with the speaker, else
    `<speaker>-<cut id>`; characters that break trn parsing are replaced by `_`.

    Kaldi-style ids (`spk0-utt0` of speaker `spk0`, LibriSpeech's `1089-134686-0000`) stay as
    they are (no `spk0-spk0-utt0`); scoring takes speakers from recogs.jsonl or `--utt2spk`.
    An added speaker part has no `-`, so sclite's `-i rm` reads that speaker back correctly.
    """
    cut_part = re.sub(r"[\s()]", "_", cut_id)
    if cut_id.startswith((f"{speaker}-", f"{speaker}_")):
        return cut_part
    speaker_part = re.sub(r"[-\s()]", "_", speaker)
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
        model.encoder.reset_compute(len(batch["cut_ids"]))
        condition_on_speakers(model, batch["speakers"])
        start = time.perf_counter()
        ids = decode_features(model, batch["features"].to(device), batch["feature_lens"].to(device), options)
        seconds = time.perf_counter() - start
        computes = model.encoder.compute_counts() or [None] * len(ids)
        model.encoder.stop_counting()
        frames = batch["feature_lens"].tolist()
        for cut_id, hyp, num_frames, compute in zip(batch["cut_ids"], tokenizer.decode(ids), frames, computes):
            records[cut_id] = recognition_record(cuts[cut_id], hyp, seconds * num_frames / max(sum(frames), 1))
            if compute is not None:
                records[cut_id][SUMMARY_KEY] = compute
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


class DecodeWork(ShardedWork):
    """Decoding as the units of a sharded stage: shard k = cuts [k * shard_size, (k+1) * shard_size).

    Args:
      out_dir: the stage directory (parts go to `<out_dir>/.parts/part-<k>.jsonl`).
      cuts: the cuts to decode (with features), in manifest order.
      options: decoding options (`shard_size` fixes the units).
      load: makes the model, tokenizer and device in the process that decodes (once).
    """

    label = "decoding"

    def __init__(self, out_dir: Path, cuts: CutSet, options: DecodeOptions, load: ModelLoader) -> None:
        self.out_dir = Path(out_dir)
        self.cuts = cuts
        self.options = options
        self.shards = list(_shards(cuts, options.shard_size))
        self._load = load
        self.summary: Dict[str, Any] = {}

    def num_units(self) -> int:
        return len(self.shards)

    def unit_size(self, index: int) -> int:
        return len(self.shards[index])

    def part_path(self, index: int) -> Path:
        return self.out_dir / PARTS_DIR / f"part-{index:05d}.jsonl"

    def read_part(self, index: int) -> Optional[List[Dict[str, Any]]]:
        """The records of part `index`, or None unless it holds exactly shard `index`'s cuts, in order."""
        try:
            records = [json.loads(line) for line in self.part_path(index).read_text().splitlines()]
        except (OSError, ValueError):
            return None
        expected = [cut.id for cut in self.shards[index]]
        if [r.get("cut_id") if isinstance(r, dict) else None for r in records] != expected:
            return None
        return records

    def unit_done(self, index: int) -> bool:
        return self.read_part(index) is not None

    def run_units(self, indices: Sequence[int], progress: Progress, processes: int) -> None:
        if not indices:
            return
        model, tokenizer, device = self._load(self.cuts)
        if processes > 1 and device.type == "cpu":
            torch.set_num_threads(max(1, torch.get_num_threads() // processes))
        for index in indices:
            if self.part_path(index).exists():
                logger.warning("%s holds other cuts than shard %d; decoding it again", self.part_path(index), index)
            records = decode_shard(model, tokenizer, self.shards[index], self.options, device)
            atomic_write_text(self.part_path(index), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            progress(len(records))

    def merge(self) -> None:
        """Write recogs.jsonl, ref.trn, hyp.trn and summary.json from every part, then drop the parts."""
        records: List[Dict[str, Any]] = []
        for index in range(self.num_units()):
            part = self.read_part(index)
            if part is None:
                raise DataError(f"{self.part_path(index)}: missing, or not the cuts of shard {index}")
            records.extend(part)
        out = self.out_dir
        atomic_write_text(out / "recogs.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        atomic_write_text(out / "ref.trn", "".join(f"{r['ref']} ({r['utt_id']})\n" for r in records))
        atomic_write_text(out / "hyp.trn", "".join(f"{r['hyp']} ({r['utt_id']})\n" for r in records))
        audio = sum(r["duration"] for r in records)
        spent = sum(r["decode_seconds"] for r in records)
        self.summary = {
            "options": dataclasses.asdict(self.options),
            "num_utterances": len(records),
            "audio_seconds": round(audio, 3),
            "decode_seconds": round(spent, 3),
            "real_time_factor": round(spent / audio, 5) if audio > 0 else None,
            "provenance": provenance(),  # of the merging process (array tasks may run elsewhere)
        }
        compute = summarize_compute(r.get(SUMMARY_KEY) for r in records)
        if compute is not None:
            self.summary[SUMMARY_KEY] = compute
        atomic_write_json(out / "summary.json", self.summary)
        shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
        logger.info("decoded %d cuts (%.1f s of audio) in %.1f s, RTF %.4f", len(records), audio, spent,
                    spent / audio if audio > 0 else float("nan"))


def run_decoding(ctx: StageContext, model: Transducer, tokenizer: Tokenizer, cuts: CutSet,
                 options: DecodeOptions, device: torch.device) -> Dict[str, Any]:
    """Stage body in one process: decode every shard not yet finished, then write the final files.

    Args:
      ctx: the stage context (finished shards in `.parts/` are kept when they hold the
        expected cuts).
      model: the transducer in eval mode.
      tokenizer: the BPE tokenizer the model was trained with.
      cuts: the cuts to decode (with features).
      options: decoding options.
      device: where the model is.

    Returns:
      The summary written to summary.json.
    """
    work = DecodeWork(ctx.out_dir, cuts, options, lambda _: (model, tokenizer, device))
    run_work(work, 1, "decode")
    return work.summary
