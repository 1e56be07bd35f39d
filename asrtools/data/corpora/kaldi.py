"""Kaldi data directories (the habit of Kaldi and ESPnet users) -> manifests + speaker table.

`--corpus-dir` is either
- one data dir (it holds `wav.scp`): one split, named after the directory (`data/test` ->
  `test`; `--option split=NAME` names it otherwise), or
- a directory of data dirs (`data/` holding `train/`, `dev/`, `test/`, each with `wav.scp`):
  one split per data dir, named after it; `--parts` picks some (default: all of them).

Per data dir: `wav.scp` (`<recording> <audio file>`), `text`, `utt2spk` are required;
`segments` (`<utt> <recording> <start> <end>`) cuts utterances out of longer recordings;
`utt2lang` sets the language. Speaker attributes: `spk2gender` and ANY other `spk2<attr>`
file (`spk2accent`, `spk2age`, `spk2region`, `spk2zip`, ...; not `spk2utt`) become columns
`<attr>` of speakers.csv and cohort fields of the supervisions. Values run to the end of the
line, so "spk1 Southern England" gives region "Southern England".

Parsing is lhotse's `lhotse.kaldi.load_kaldi_data_dir` (and its `load_kaldi_text_mapping` for
the spk2<attr> files). Two things lhotse leaves to the caller are done here: lhotse takes the
sample rate as an argument and trusts it, so each recording is re-read from its audio
header (true rate, duration; an unreadable file is named); and piped `wav.scp` entries
(`sox ... |`) are refused, because running commands found in a data file is a shell
injection — convert such audio to files first. `utt2dur`/`reco2dur` are not needed (durations
come from the audio headers).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from lhotse import Recording, RecordingSet

from asrtools.data.corpora.base import (
    CorpusRecipe,
    PreparedCorpus,
    PrepareOptions,
    call_lhotse,
    register_corpus,
    require_dir,
    require_file,
)
from asrtools.errors import ConfigError, DataError, describe

REQUIRED_FILES = ("wav.scp", "text", "utt2spk")
NOT_ATTRIBUTES = ("spk2utt",)


def _table(path: Path, min_fields: int = 2) -> List[Tuple[int, List[str]]]:
    """(line number, fields) of a Kaldi text table: `<key> <value...>` split into at most `min_fields`."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=min_fields - 1)
        if len(fields) < min_fields:
            raise DataError(f"{path}:{number}: expected {min_fields} fields, got {line.strip()!r}")
        rows.append((number, fields))
    return rows


def attribute_files(data_dir: Path) -> Dict[str, Path]:
    """`{attribute: path}` of the `spk2<attribute>` files of a data dir (spk2utt excluded)."""
    return {p.name[len("spk2"):]: p for p in sorted(Path(data_dir).glob("spk2*"))
            if p.is_file() and p.name not in NOT_ATTRIBUTES and len(p.name) > len("spk2")}


def check_data_dir(data_dir: Path) -> None:
    """The required files exist; every utterance has audio (a file, not a pipe), text and speaker.

    Raises:
      DataError: naming the file, line and id of the first problem.
    """
    for file_name in REQUIRED_FILES:
        require_file(data_dir, file_name)
    wav = {}
    for number, (rec, source) in _table(data_dir / "wav.scp"):
        source = source.strip()
        if source.endswith("|") or source.startswith("|"):
            raise DataError(f"{data_dir / 'wav.scp'}:{number}: recording {rec}: piped commands are not run "
                            "(convert the audio to files first, e.g. with sox)")
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{data_dir / 'wav.scp'}:{number}: recording {rec}: audio file {source} not found")
        wav[rec] = path
    utt2spk = {utt: spk for _, (utt, spk) in _table(data_dir / "utt2spk")}
    texts = {}
    for number, (line,) in _table(data_dir / "text", 1):
        utt, *words = line.split(maxsplit=1)
        if not words or not words[0].strip():
            raise DataError(f"{data_dir / 'text'}:{number}: utterance {utt} has an empty transcript")
        texts[utt] = number
    if (data_dir / "segments").is_file():
        utterances = []
        for number, fields in _table(data_dir / "segments", 4):
            utt, rec = fields[0], fields[1]
            if rec not in wav:
                raise DataError(f"{data_dir / 'segments'}:{number}: utterance {utt}: recording {rec} is not in wav.scp")
            utterances.append(utt)
        where = "segments"
    else:
        utterances = list(wav)
        where = "wav.scp"
    for utt in utterances:
        if utt not in utt2spk:
            raise DataError(f"{data_dir}: utterance {utt} (in {where}) is not in utt2spk")
        if utt not in texts:
            raise DataError(f"{data_dir}: utterance {utt} (in {where}) has no line in text")
    for path in attribute_files(data_dir).values():
        _table(path)  # every line `<speaker> <value>`
    for file_name, listed in (("utt2spk", utt2spk), ("text", texts)):
        extra = sorted(set(listed) - set(utterances))
        if extra:
            raise DataError(f"{data_dir / file_name}: utterance {extra[0]} has no audio (not in {where})")


@register_corpus
class KaldiDataDir(CorpusRecipe):
    name = "kaldi"
    description = "a Kaldi data dir (wav.scp, text, utt2spk, [segments], spk2gender, spk2<attr>) or a dir of them"
    default_parts = ()
    option_help = {"split": "name of the split when --corpus-dir is a single data dir (default: its name)"}

    def resolve_parts(self, corpus_dir: Path, parts: Sequence[str]) -> Tuple[str, ...]:
        if (Path(corpus_dir) / "wav.scp").is_file():
            if parts:
                raise ConfigError(f"{corpus_dir} is one Kaldi data dir (it has wav.scp): --parts picks data dirs "
                                  "inside a parent directory; name this split with --option split=NAME")
            return (".",)
        if parts:
            return tuple(parts)
        found = tuple(sorted(p.name for p in Path(corpus_dir).iterdir() if (p / "wav.scp").is_file()))
        if not found:
            raise DataError(f"{corpus_dir}: neither a Kaldi data dir (no wav.scp) nor a directory of them")
        return found

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        for part in parts:
            check_data_dir(Path(corpus_dir) if part == "." else require_dir(corpus_dir, part))

    def split_name(self, corpus_dir: Path, part: str, options: PrepareOptions) -> str:
        if part == ".":
            return options.get("split") or Path(corpus_dir).resolve().name
        if options.get("split"):
            raise ConfigError("--option split=NAME names the split of a single data dir; "
                              f"{corpus_dir} holds several (their names are the splits)")
        return part

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        from lhotse.kaldi import load_kaldi_data_dir, load_kaldi_text_mapping

        splits, rows = {}, []
        for part in parts:
            data_dir = Path(corpus_dir) if part == "." else Path(corpus_dir) / part
            split = self.split_name(corpus_dir, part, options)
            # lhotse needs a rate; the true one is read from each audio header just below.
            recordings, supervisions, _ = call_lhotse(load_kaldi_data_dir, data_dir, data_dir, sampling_rate=16000,
                                                      use_reco2dur=False, num_jobs=options.num_jobs)
            splits[split] = (RecordingSet.from_recordings(_from_header(r, data_dir) for r in recordings),
                             supervisions)
            attributes = {name: load_kaldi_text_mapping(path) for name, path in attribute_files(data_dir).items()}
            for speaker in sorted({s.speaker for s in supervisions}):
                row = {"id": speaker, "split": split}
                row.update({name: values.get(speaker) or "" for name, values in attributes.items()})
                rows.append(row)
        return PreparedCorpus(splits, rows)


def _from_header(recording: Recording, data_dir: Path) -> Recording:
    source = recording.sources[0].source
    try:
        return Recording.from_file(Path(source).resolve(), recording_id=recording.id)
    except Exception as err:  # noqa: BLE001 - audio backends raise many types for a corrupt file
        raise DataError(f"{data_dir / 'wav.scp'}: recording {recording.id}: cannot read audio {source} "
                        f"({describe(err)})") from None
