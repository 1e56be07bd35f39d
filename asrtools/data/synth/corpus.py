"""Build the synthetic multi-speaker, multi-accent English corpus (`asrtools data synth`).

Layout of the output directory:
  speakers.jsonl / speakers.csv   one row per speaker: split, engine, voice, accent, region,
                                  gender, lat/lon, zip, voice and channel settings
  zipcodes.csv                    the synthetic zip table with census-like attributes
  sentences/{train,dev,test}.txt  the disjoint sentence pools
  utterances.jsonl                one row per utterance: id, speaker, split, text, wav,
                                  duration, noise, snr_db, level_db
  wav/<speaker>/<utt id>.wav      16 kHz 16-bit mono audio
  babble/bed-<i>.wav              babble noise beds (background talkers, not corpus speakers)

The build is planned entirely from the config and seed (`CorpusWork`, a sharded stage whose
units are the utterances: `-j N` synthesises them in N processes or N SLURM array tasks),
every wav written atomically (a rerun after a kill skips the finished ones), and checked:
voices exist, every speaker sounds different, no TTS warnings, durations sane. The set-up
(voices, speaker check, tables, babble beds) runs once before any utterance.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
import random
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np
import soundfile as sf

from asrtools.data.synth import acoustics, tts
from asrtools.data.synth.config import SPLITS, SynthConfig
from asrtools.data.synth.speakers import Speaker, make_speakers, make_zip_table
from asrtools.data.synth.text import sentence_pools
from asrtools.errors import DataError
from asrtools.pipeline.atomic import atomic_path, atomic_write_text
from asrtools.pipeline.sharding import Progress, ShardedWork, run_work

logger = logging.getLogger("asrtools")

VOICES_DIR = ".voices"  # per-speaker espeak-ng data dirs: work files, not outputs


@dataclasses.dataclass
class PlannedUtterance:
    id: str
    speaker: str
    split: str
    text: str  # the transcript: upper-case words
    rate_factor: float
    noise: str
    snr_db: float
    level_db: float
    seed: int


def plan_utterances(cfg: SynthConfig, speakers: Sequence[Speaker], pools: Dict[str, List[str]]) -> List[PlannedUtterance]:
    """Every utterance to synthesise, fully determined by `cfg.seed`."""
    rng = random.Random(cfg.seed + 1)
    noise_names = sorted(cfg.noise_probs)
    noise_weights = [cfg.noise_probs[n] for n in noise_names]
    plan = []
    for speaker in speakers:
        pool = pools[speaker.split]
        if len(pool) < cfg.utts_per_speaker:
            raise DataError(f"split {speaker.split}: only {len(pool)} sentences for "
                            f"{cfg.utts_per_speaker} utterances per speaker (raise vocab_size)")
        for i, text in enumerate(rng.sample(pool, cfg.utts_per_speaker)):
            plan.append(PlannedUtterance(
                id=f"{speaker.id}-{i:03d}",
                speaker=speaker.id,
                split=speaker.split,
                text=text,
                rate_factor=round(1 + rng.uniform(-cfg.rate_jitter, cfg.rate_jitter), 4),
                noise=rng.choices(noise_names, weights=noise_weights)[0],
                snr_db=round(rng.uniform(*cfg.snr_db), 2),
                level_db=round(rng.uniform(*cfg.level_db), 2),
                seed=rng.randrange(2 ** 31),
            ))
    return plan


def _babble_bed(index: int, cfg: SynthConfig, sentences: List[str], out_path: Path) -> None:
    """Mix `cfg.babble_talkers` built-in espeak-ng voices reading train sentences."""
    rng = random.Random(cfg.seed * 1000 + index)
    length = int(cfg.babble_seconds * cfg.sample_rate)
    bed = np.zeros(length)
    variants = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4"]
    with tempfile.TemporaryDirectory() as tmp:
        for talker in range(cfg.babble_talkers):
            voice = f"{rng.choice(['en-us', 'en-gb', 'en-gb-x-rp'])}+{rng.choice(variants)}"
            text = " ".join(rng.choice(sentences).lower() for _ in range(int(cfg.babble_seconds / 2)))
            raw, wav = Path(tmp) / "raw.wav", Path(tmp) / f"t{talker}.wav"
            tts._run(["espeak-ng", "-v", voice, "-s", str(rng.randint(150, 190)), "--stdin", "-w", str(raw)],
                     f"babble talker {voice}", stdin=text.encode())
            acoustics._sox([str(raw), "-b", "16", str(wav), "rate", str(cfg.sample_rate)], "babble")
            speech = acoustics.read_wav(wav)[:length]
            offset = rng.randrange(0, max(1, length // 4))
            speech = np.roll(np.pad(speech, (0, length - len(speech))), offset)
            bed += speech / (np.sqrt(np.mean(speech ** 2)) + 1e-12)
    with atomic_path(out_path) as tmp_path:
        acoustics.write_wav(tmp_path, 0.9 * bed / np.max(np.abs(bed)), cfg.sample_rate)


_WORKER: Dict[str, Any] = {}


def _init_worker(speakers: Dict[str, Speaker], voices_dir: Path, babble: List[str], sample_rate: int) -> None:
    _WORKER.update(speakers=speakers, voices_dir=voices_dir, sample_rate=sample_rate,
                   babble=[acoustics.read_wav(Path(p)) for p in babble])


def synthesize_utterance(utt: PlannedUtterance, out_wav: Path) -> None:
    """TTS -> microphone/channel -> noise -> `out_wav`, written atomically (worker function)."""
    speaker: Speaker = _WORKER["speakers"][utt.speaker]
    rng = np.random.default_rng(utt.seed)
    with tempfile.TemporaryDirectory() as tmp:
        raw, coloured = Path(tmp) / "tts.wav", Path(tmp) / "mic.wav"
        tts.synthesize(speaker, utt.text.lower(), utt.rate_factor, raw, _WORKER["voices_dir"])
        acoustics.apply_channel(speaker, raw, coloured, _WORKER["sample_rate"], utt.level_db)
        speech = acoustics.read_wav(coloured)
    babble = None
    if utt.noise == "babble":
        babble = _WORKER["babble"][int(rng.integers(len(_WORKER["babble"])))]
    mixed = acoustics.add_noise(speech, utt.noise, utt.snr_db, rng, babble)
    with atomic_path(out_wav) as tmp_path:
        acoustics.write_wav(tmp_path, mixed, _WORKER["sample_rate"])


def _write_tables(out_dir: Path, speakers: Sequence[Speaker], zips: Sequence[Any], pools: Dict[str, List[str]]) -> None:
    rows = [dataclasses.asdict(s) for s in speakers]
    atomic_write_text(out_dir / "speakers.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    for name, table in (("speakers.csv", rows), ("zipcodes.csv", [dataclasses.asdict(z) for z in zips])):
        with atomic_path(out_dir / name) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
    for split, sentences in pools.items():
        atomic_write_text(out_dir / "sentences" / f"{split}.txt", "".join(s + "\n" for s in sentences))


def _check_durations(cfg: SynthConfig, plan: Sequence[PlannedUtterance], durations: Dict[str, float]) -> None:
    for utt in plan:
        words = len(utt.text.split())
        per_word = durations[utt.id] / words
        if not cfg.min_seconds_per_word <= per_word <= cfg.max_seconds_per_word:
            raise DataError(f"utterance {utt.id}: {durations[utt.id]:.2f} s for {words} words is implausible "
                            f"({per_word:.2f} s/word outside [{cfg.min_seconds_per_word}, {cfg.max_seconds_per_word}])")


class CorpusWork(ShardedWork):
    """The corpus as the units of a sharded stage: one unit per planned utterance.

    Args:
      cfg: the corpus configuration (see `SynthConfig` and `PRESETS`).
      out_dir: the stage directory; finished wavs are kept and skipped.
    """

    label = "synthesising"

    def __init__(self, cfg: SynthConfig, out_dir: Path) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.pools = sentence_pools(cfg.vocab_size, cfg.min_words, cfg.max_words, cfg.sentence_split, cfg.seed)
        self.zips = make_zip_table(cfg.zips_per_region, cfg.seed)
        self.speakers = make_speakers(cfg.speaker_counts(), cfg.flite_speakers, cfg.female_fraction,
                                      cfg.channel_probs, self.zips, cfg.seed,
                                      cfg.speaker_id_prefix)
        if not self.speakers:
            raise DataError("the corpus config has no speakers")
        self.plan = plan_utterances(cfg, self.speakers, self.pools)
        self.voices_dir = self.out_dir / VOICES_DIR
        self.babble_paths = [self.out_dir / "babble" / f"bed-{i}.wav" for i in range(4)]
        self.stats: Dict[str, Any] = {}

    def wav_path(self, utt: PlannedUtterance) -> Path:
        return self.out_dir / "wav" / utt.speaker / f"{utt.id}.wav"

    def setup(self) -> None:
        """Check the voices, make the speakers' espeak-ng voices, prove they differ, write the
        speaker/zip/sentence tables and the babble beds."""
        tts.check_voices_exist(self.speakers)
        logger.info("corpus plan: %d speakers, %d utterances, sentence pools %s", len(self.speakers),
                    len(self.plan), {k: len(v) for k, v in self.pools.items()})
        data_dir = tts.espeak_data_dir()
        for speaker in self.speakers:
            if speaker.engine == "espeak-ng":
                tts.prepare_espeak_voice(speaker, self.voices_dir, data_dir)
        tts.check_speakers_distinct(self.speakers, self.voices_dir, self.out_dir / ".probes")
        _write_tables(self.out_dir, self.speakers, self.zips, self.pools)
        for i, path in enumerate(self.babble_paths):
            if not path.exists():
                _babble_bed(i, self.cfg, self.pools["train"], path)

    def num_units(self) -> int:
        return len(self.plan)

    def unit_done(self, index: int) -> bool:
        return self.wav_path(self.plan[index]).is_file()  # written atomically: present means complete

    def run_units(self, indices: Sequence[int], progress: Progress, processes: int) -> None:
        if not indices:
            return
        _init_worker({s.id: s for s in self.speakers}, self.voices_dir, [str(p) for p in self.babble_paths],
                     self.cfg.sample_rate)
        for index in indices:
            utt = self.plan[index]
            synthesize_utterance(utt, self.wav_path(utt))
            progress(1)

    def merge(self) -> None:
        """Check every utterance's duration, write utterances.jsonl, keep the statistics in `stats`."""
        plan = self.plan
        durations = {u.id: sf.info(str(self.wav_path(u))).duration for u in plan}
        _check_durations(self.cfg, plan, durations)
        lines = []
        for utt in plan:
            row = dataclasses.asdict(utt)
            row.update(wav=f"wav/{utt.speaker}/{utt.id}.wav", duration=round(durations[utt.id], 4))
            del row["seed"], row["rate_factor"]
            lines.append(json.dumps(row, sort_keys=True) + "\n")
        atomic_write_text(self.out_dir / "utterances.jsonl", "".join(lines))
        hours = {split: round(sum(durations[u.id] for u in plan if u.split == split) / 3600, 3) for split in SPLITS}
        self.stats = {"speakers": len(self.speakers), "utterances": len(plan), "hours": hours}
        logger.info("corpus built: %s", self.stats)


def build_corpus(cfg: SynthConfig, out_dir: Path, num_jobs: int = 1) -> Dict[str, Any]:
    """Synthesise the corpus described by `cfg` into `out_dir` (resumable); return statistics.

    Outside the stage machinery (`asrtools data synth` is the stage): set up, then run the
    unfinished utterances in `num_jobs` processes and merge.

    Args:
      cfg: the corpus configuration (see `SynthConfig` and `PRESETS`).
      out_dir: output directory; finished wavs are kept and skipped.
      num_jobs: parallel synthesis processes.
    """
    work = CorpusWork(cfg, out_dir)
    work.setup()
    run_work(work, num_jobs, "data synth")
    return work.stats
