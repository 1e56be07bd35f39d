"""Reading and writing transcripts for scoring: sclite trn, Kaldi `text`, recogs.jsonl.

- trn (sclite): ``words (utterance-id)`` per line; the id is the text inside the last
  parentheses, which must end the line. ``;;`` comment lines and blank lines are skipped.
  sclite's in-text conventions (``@`` null words, ``(optionally deletable)`` words with
  ``-D``, ``{ alternations / }``, ``;`` tags, a trailing ``*``) are *not* interpreted: every
  token is a literal word.
- Kaldi text: ``utterance-id words...`` per line.
- recogs.jsonl (written by the decode stage): one JSON object per line with ``id``,
  ``speaker``, ``ref``, ``hyp`` and ``custom`` (cohort fields).
- A decode directory holds ``recogs.jsonl`` (preferred) or ``ref.trn`` + ``hyp.trn``.
- Kaldi ``utt2spk`` (``--utt2spk``): ``utterance-id speaker-id`` per line; it sets every
  scored utterance's speaker. Without it, trn and text inputs take the speaker from the id
  (sclite's ``-i rm`` rule, `asrtools.scoring.wer.speaker_of`: the text before the first ``-``,
  else before the first ``_``) and say so in the log; recogs.jsonl carries its own speakers.
- Speaker attribute maps (``--cohort-map``, repeatable; `read_speaker_attributes`): a Kaldi-style
  ``spk2<field>`` file (``speaker value`` lines, the field named after the file: ``spk2accent``
  gives ``accent``), any other ``speaker value`` file (field ``cohort``), a CSV/TSV speaker table
  with a header row (the ``id`` / ``speaker`` column, else the first, is the speaker; every other
  column is a field), or a lhotse SupervisionSet manifest.

Every reader fails with a one-line `DataError` naming the file and line (malformed line,
duplicate id, bad UTF-8); `load_pairs` also names ids present on one side only.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from asrtools.errors import ConfigError, DataError
from asrtools.pipeline import atomic_path
from asrtools.scoring.wer import UttPair, WerReport, speaker_of

logger = logging.getLogger("asrtools")

FORMATS = ("auto", "trn", "text", "recogs")
RECOGS_NAME = "recogs.jsonl"

Entry = Tuple[str, str, int]  # (utterance id, text, line number)


def _lines(path: Path, strip: bool = True) -> Iterator[Tuple[int, str]]:
    """`(line number, text)` of the non-blank lines of a UTF-8 file, stripped (else only without the newline)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        lineno = data.count(b"\n", 0, err.start) + 1
        raise DataError(f"{path}:{lineno}: not valid UTF-8 ({err.reason})") from None
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield lineno, line.strip() if strip else line.rstrip("\r")


def _unique(path: Path, entries: List[Entry]) -> Dict[str, Tuple[str, int]]:
    seen: Dict[str, Tuple[str, int]] = {}
    for utt_id, text, lineno in entries:
        if utt_id in seen:
            raise DataError(
                f"{path}:{lineno}: duplicate utterance id {utt_id!r} (first on line {seen[utt_id][1]})"
            )
        seen[utt_id] = (text, lineno)
    return seen


def _trn_entries(path: Path) -> List[Entry]:
    entries = []
    for lineno, line in _lines(path):
        if line.startswith(";;"):
            continue
        open_paren = line.rfind("(")
        if not line.endswith(")") or open_paren < 0 or open_paren == len(line) - 2:
            raise DataError(f"{path}:{lineno}: malformed trn line (expected 'words (utterance-id)'): {line[:60]!r}")
        entries.append((line[open_paren + 1 : -1].strip(), line[:open_paren].strip(), lineno))
    return entries


def _text_entries(path: Path) -> List[Entry]:
    entries = []
    for lineno, line in _lines(path):
        parts = line.split(maxsplit=1)
        entries.append((parts[0], parts[1] if len(parts) > 1 else "", lineno))
    return entries


def read_trn(path: Path) -> Dict[str, str]:
    """Read an sclite trn file into `{utterance id: text}` (file order).

    Args:
      path: the trn file.
    """
    return {utt: text for utt, (text, _) in _unique(path, _trn_entries(path)).items()}


def read_kaldi_text(path: Path) -> Dict[str, str]:
    """Read a Kaldi `text` file (`utterance-id words...`) into `{utterance id: text}`.

    Args:
      path: the text file; a line holding only an id is an empty transcript.
    """
    return {utt: text for utt, (text, _) in _unique(path, _text_entries(path)).items()}


_RECOG_ID_KEYS = ("id", "cut_id", "utt_id")
_RECOG_CORE_KEYS = frozenset(_RECOG_ID_KEYS + ("speaker", "ref", "hyp", "custom"))


def read_recogs(path: Path, allow_missing: bool = False) -> List[UttPair]:
    """Read recogs.jsonl into `UttPair`s (file order).

    Args:
      path: the JSON-lines file. Each object needs an id (`id`, else `cut_id`, else
        `utt_id`), `ref` and `hyp` strings; `speaker` (default: from the id) and `custom`
        (a mapping of cohort fields) are optional. Other top-level fields (e.g. `gender`)
        are kept as cohort fields too; `custom` wins on a name clash.
      allow_missing: score a null/absent `hyp` as empty instead of failing.
    """
    pairs: List[UttPair] = []
    first_line: Dict[str, int] = {}
    for lineno, line in _lines(path):
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object")
        utt_id = next((obj[k] for k in _RECOG_ID_KEYS if obj.get(k) not in (None, "")), None)
        if not isinstance(utt_id, str):
            raise DataError(f"{path}:{lineno}: missing or empty utterance id ('id' or 'cut_id')")
        if utt_id in first_line:
            raise DataError(f"{path}:{lineno}: duplicate utterance id {utt_id!r} (first on line {first_line[utt_id]})")
        first_line[utt_id] = lineno
        ref, hyp = obj.get("ref"), obj.get("hyp")
        if not isinstance(ref, str):
            raise DataError(f"{path}:{lineno}: utterance {utt_id!r} has no 'ref' string")
        missing = hyp is None
        if missing and not allow_missing:
            raise DataError(
                f"{path}:{lineno}: utterance {utt_id!r} has no 'hyp' (use --allow-missing to score it as empty)"
            )
        if not missing and not isinstance(hyp, str):
            raise DataError(f"{path}:{lineno}: utterance {utt_id!r}: 'hyp' is not a string")
        custom = obj.get("custom") or {}
        if not isinstance(custom, dict):
            raise DataError(f"{path}:{lineno}: utterance {utt_id!r}: 'custom' is not an object")
        fields = {k: v for k, v in obj.items() if k not in _RECOG_CORE_KEYS and not isinstance(v, (dict, list))}
        fields.update(custom)
        speaker = obj.get("speaker")
        speaker = str(speaker) if speaker not in (None, "") else speaker_of(utt_id)
        pairs.append(UttPair(utt_id, speaker, ref, hyp or "", fields, missing))
    return pairs


def detect_format(path: Path) -> str:
    """Guess `recogs`, `trn` or `text` for a transcript file or decode directory."""
    path = Path(path)
    if path.is_dir() or path.name.endswith(".jsonl"):
        return "recogs"
    for _, line in _lines(path):
        if line.startswith(";;"):
            continue
        return "trn" if line.endswith(")") and "(" in line else "text"
    return "trn" if path.suffix == ".trn" else "text"


def _read_entries(path: Path, fmt: str) -> Dict[str, Tuple[str, int]]:
    if fmt == "trn":
        return _unique(path, _trn_entries(path))
    if fmt == "text":
        return _unique(path, _text_entries(path))
    raise ConfigError(f"{path}: format {fmt!r} cannot be used as a reference or hypothesis file")


def resolve_decode_dir(path: Path) -> Tuple[Path, Optional[Path]]:
    """Inside a decode directory: (`recogs.jsonl`, None) or (`ref.trn`, `hyp.trn`)."""
    path = Path(path)
    if (path / RECOGS_NAME).is_file():
        return path / RECOGS_NAME, None
    if (path / "ref.trn").is_file() and (path / "hyp.trn").is_file():
        return path / "ref.trn", path / "hyp.trn"
    raise DataError(f"{path}: not a decode directory (no {RECOGS_NAME}, nor ref.trn + hyp.trn)")


def load_pairs(
    ref: Path,
    hyp: Optional[Path] = None,
    ref_format: str = "auto",
    hyp_format: str = "auto",
    allow_missing: bool = False,
    utt2spk: Optional[Path] = None,
) -> List[UttPair]:
    """Load the utterances to score, matched by id, in reference order.

    Args:
      ref: a trn / Kaldi text reference file, or a recogs.jsonl / decode directory
        (which gives both sides; then `hyp` must be None).
      hyp: the hypothesis file (trn or Kaldi text).
      ref_format, hyp_format: `auto`, `trn`, `text` or `recogs`.
      allow_missing: a reference id without hypothesis is scored as an empty hypothesis
        (and reported) instead of failing. A hypothesis id without reference always fails.
      utt2spk: a Kaldi `utt2spk` file that sets every utterance's speaker (it must name
        every scored utterance). Without it trn/text inputs take the speaker from the id.
    """
    if utt2spk is None:
        return _load_pairs(ref, hyp, ref_format, hyp_format, allow_missing, log_speakers=True)
    pairs = _load_pairs(ref, hyp, ref_format, hyp_format, allow_missing, log_speakers=False)
    return apply_utt2spk(pairs, read_utt2spk(utt2spk), utt2spk)


def _load_pairs(ref: Path, hyp: Optional[Path], ref_format: str, hyp_format: str, allow_missing: bool,
                log_speakers: bool) -> List[UttPair]:
    ref = Path(ref)
    if ref.is_dir():
        recogs, trn_hyp = resolve_decode_dir(ref)
        if trn_hyp is not None:
            if hyp is not None:
                raise ConfigError(f"--hyp given, but {ref} already holds ref.trn and hyp.trn")
            return _load_pairs(recogs, trn_hyp, "trn", "trn", allow_missing, log_speakers)
        ref, ref_format = recogs, "recogs"
    ref_format = detect_format(ref) if ref_format == "auto" else ref_format
    if ref_format == "recogs":
        if hyp is not None:
            raise ConfigError(f"--hyp given, but {ref} already holds references and hypotheses")
        return _non_empty(read_recogs(ref, allow_missing), ref)
    if hyp is None:
        raise ConfigError(f"{ref} holds only references: give the hypotheses with --hyp")
    hyp = Path(hyp)
    hyp_format = detect_format(hyp) if hyp_format == "auto" else hyp_format
    refs = _read_entries(ref, ref_format)
    hyps = _read_entries(hyp, hyp_format)
    for utt_id, (_, lineno) in hyps.items():
        if utt_id not in refs:
            raise DataError(f"{hyp}:{lineno}: utterance {utt_id!r} has no reference in {ref}")
    missing = [utt_id for utt_id in refs if utt_id not in hyps]
    if missing and not allow_missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(
            f"{hyp}: no hypothesis for utterance {missing[0]!r} of {ref}{more}; "
            "use --allow-missing to score missing hypotheses as empty"
        )
    pairs = []
    for utt_id, (ref_text, _) in refs.items():
        hyp_text = hyps.get(utt_id, ("", 0))[0]
        pairs.append(UttPair(utt_id, speaker_of(utt_id), ref_text, hyp_text, {}, utt_id not in hyps))
    pairs = _non_empty(pairs, ref)
    if log_speakers:
        logger.info("%s: speakers taken from the utterance ids (text before the first '-', else '_'; e.g. %r -> "
                    "%r): %d speakers; give --utt2spk to set them", ref, pairs[0].id, pairs[0].speaker,
                    len({p.speaker for p in pairs}))
    return pairs


def read_utt2spk(path: Path) -> Dict[str, str]:
    """Read a Kaldi `utt2spk` file (`utterance-id speaker-id` per line) into `{utterance: speaker}`.

    Raises:
      DataError: naming the file and line of a malformed line or a repeated utterance id.
    """
    path = Path(path)
    mapping: Dict[str, str] = {}
    first: Dict[str, int] = {}
    for lineno, line in _lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected 'utterance-id speaker-id', got {line[:60]!r}")
        utt, speaker = parts
        if utt in mapping:
            raise DataError(f"{path}:{lineno}: duplicate utterance id {utt!r} (first on line {first[utt]})")
        mapping[utt] = speaker
        first[utt] = lineno
    if not mapping:
        raise DataError(f"{path}: empty utt2spk file")
    return mapping


def _speaker_for(utt2spk: Dict[str, str], utt_ids: Sequence[str], path: Path) -> List[str]:
    missing = [utt for utt in utt_ids if utt not in utt2spk]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{path}: no speaker for scored utterance {missing[0]!r}{more}")
    return [utt2spk[utt] for utt in utt_ids]


def apply_utt2spk(pairs: List[UttPair], utt2spk: Dict[str, str], path: Path) -> List[UttPair]:
    """`pairs` with every speaker set from `utt2spk` (read from `path`); a missing id is a `DataError`."""
    speakers = _speaker_for(utt2spk, [p.id for p in pairs], path)
    return [p._replace(speaker=speaker) for p, speaker in zip(pairs, speakers)]


def report_with_utt2spk(report: WerReport, utt2spk: Dict[str, str], path: Path) -> WerReport:
    """`report` (e.g. read from a WER directory) with every speaker set from `utt2spk`."""
    speakers = _speaker_for(utt2spk, [u.id for u in report.utterances], path)
    utterances = [u._replace(speaker=speaker) for u, speaker in zip(report.utterances, speakers)]
    return WerReport(report.mode, utterances, list(report.missing_hyp), dict(report.normalizer))


def _non_empty(pairs: List[UttPair], source: Path) -> List[UttPair]:
    if not pairs:
        raise DataError(f"{source}: no utterances to score")
    return pairs


def format_trn(words: Sequence[str], utt_id: str) -> str:
    """One trn line (without newline): `words (utt_id)`."""
    return f"{' '.join(words)} ({utt_id})"


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Write `lines` (each + newline) to `path` atomically, UTF-8."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
            if lines:
                f.write("\n")


MANIFEST_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
SPEAKER_ID_COLUMNS = ("id", "speaker", "speaker_id", "spk")


def map_field(path: Path) -> Optional[str]:
    """The field a `speaker value` map gives: `accent` for `spk2accent[.txt]`, `cohort` for any other
    plain map; None for a CSV/TSV table or a lhotse manifest (they name their own fields)."""
    name = Path(path).name
    if name.endswith(MANIFEST_SUFFIXES) or Path(path).suffix.lower() in TABLE_SUFFIXES:
        return None
    stem = name.split(".", 1)[0]
    return stem[len("spk2"):] if stem.startswith("spk2") and len(stem) > len("spk2") else "cohort"


def read_speaker_attributes(path: Path) -> Dict[str, Dict[str, Any]]:
    """Speaker-level cohort attributes for `--cohort-map`.

    Args:
      path: one of
        - a lhotse SupervisionSet manifest (`.jsonl`, `.jsonl.gz`, `.json`): each speaker gets
          `gender` and its `custom` fields (a field whose value differs between a speaker's
          supervisions is left out for that speaker);
        - a CSV (`.csv`) or TSV (`.tsv`) speaker table with a header row: the column `id`
          (else `speaker`, `speaker_id`, `spk`, else the first) holds the speaker, every other
          column is a field; an empty cell leaves that field unset for the speaker;
        - a text file of `speaker value` lines (`#` comments), Kaldi's `spk2gender` style: the
          field is named after the file (`spk2accent` -> `accent`), or `cohort` for any other name.

    Returns:
      `{speaker: {attribute: value}}`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: cohort map not found")
    if path.name.endswith(MANIFEST_SUFFIXES):
        return _supervision_attributes(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return _table_attributes(path, TABLE_SUFFIXES[path.suffix.lower()])
    field = map_field(path)
    attrs: Dict[str, Dict[str, Any]] = {}
    lines: Dict[str, int] = {}
    for lineno, line in _lines(path):
        if line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}:{lineno}: expected 'speaker {field}', got {line[:60]!r}")
        speaker, value = parts
        if speaker in attrs and attrs[speaker][field] != value:
            raise DataError(
                f"{path}:{lineno}: speaker {speaker!r} mapped to {value!r} but to "
                f"{attrs[speaker][field]!r} on line {lines[speaker]}"
            )
        attrs[speaker] = {field: value}
        lines[speaker] = lineno
    return attrs


def _table_attributes(path: Path, delimiter: str) -> Dict[str, Dict[str, Any]]:
    """A CSV/TSV speaker table with a header row -> `{speaker: {column: value}}` (empty cells left out)."""
    import csv

    rows = [(lineno, line) for lineno, line in _lines(path, strip=False) if not line.startswith("#")]
    if not rows:
        raise DataError(f"{path}: empty speaker table (expected a header row, then one row per speaker)")
    header_line, header_text = rows[0]
    header = [h.strip() for h in next(csv.reader([header_text], delimiter=delimiter))]
    if len(header) < 2 or len(set(header)) != len(header) or any(not h for h in header):
        raise DataError(f"{path}:{header_line}: expected a header row of distinct column names (id column, then "
                        f"attributes), got {header_text[:80]!r}")
    id_column = next((i for i, h in enumerate(header) if h.lower() in SPEAKER_ID_COLUMNS), 0)
    attrs: Dict[str, Dict[str, Any]] = {}
    first: Dict[str, int] = {}
    for lineno, text in rows[1:]:
        cells = [c.strip() for c in next(csv.reader([text], delimiter=delimiter))]
        if len(cells) != len(header):
            raise DataError(f"{path}:{lineno}: {len(cells)} columns, the header has {len(header)}")
        speaker = cells[id_column]
        if not speaker:
            raise DataError(f"{path}:{lineno}: empty speaker id in column {header[id_column]!r}")
        if speaker in attrs:
            raise DataError(f"{path}:{lineno}: speaker {speaker!r} repeated (first on line {first[speaker]})")
        first[speaker] = lineno
        attrs[speaker] = {h: c for i, (h, c) in enumerate(zip(header, cells)) if i != id_column and c != ""}
    return attrs


def read_cohort_maps(paths: Sequence[Path]) -> Dict[str, Dict[str, Any]]:
    """Several `--cohort-map` files merged into `{speaker: {field: value}}` (`merge_cohort_maps`)."""
    return merge_cohort_maps([(Path(path), read_speaker_attributes(path)) for path in paths])


def merge_cohort_maps(maps: Sequence[Tuple[Path, Dict[str, Dict[str, Any]]]]) -> Dict[str, Dict[str, Any]]:
    """`(path, {speaker: {field: value}})` maps merged into one `{speaker: {field: value}}`.

    Raises:
      ConfigError: two maps give the same field (say which one to use).
    """
    merged: Dict[str, Dict[str, Any]] = {}
    owner: Dict[str, Path] = {}
    for path, attrs in maps:
        fields = sorted({f for values in attrs.values() for f in values})
        for field in fields:
            if field in owner:
                raise ConfigError(f"--cohort-map: {path} and {owner[field]} both give the field {field!r}; "
                                  "give only one of them")
            owner[field] = Path(path)
        for speaker, values in attrs.items():
            merged.setdefault(speaker, {}).update(values)
    return merged


def _supervision_attributes(path: Path) -> Dict[str, Dict[str, Any]]:
    from lhotse import SupervisionSet, load_manifest

    try:
        supervisions = load_manifest(path)
    except Exception as err:  # lhotse raises several types for malformed manifests
        raise DataError(f"{path}: cannot read as a lhotse manifest ({type(err).__name__}: {err})") from None
    if not isinstance(supervisions, SupervisionSet):
        raise DataError(f"{path}: expected a SupervisionSet manifest, got {type(supervisions).__name__}")
    attrs: Dict[str, Dict[str, Any]] = {}
    varying: Dict[str, set] = {}
    for sup in supervisions:
        if sup.speaker is None:
            raise DataError(f"{path}: supervision {sup.id!r} has no speaker")
        fields: Dict[str, Any] = dict(sup.custom or {})
        if sup.gender is not None:
            fields["gender"] = sup.gender
        known = attrs.setdefault(sup.speaker, {})
        dropped = varying.setdefault(sup.speaker, set())
        for key, value in fields.items():
            if key in dropped:
                continue
            if key in known and known[key] != value:
                dropped.add(key)
                del known[key]
            else:
                known[key] = value
    dropped_any = sorted(set().union(*varying.values())) if varying else []
    if dropped_any:
        logger.info(
            "%s: %s vary within a speaker; left out of the speaker attributes where they do",
            path, ", ".join(dropped_any),
        )
    return attrs


MIN_MAPPED_SHARE = 0.5  # below this share of scored speakers found in a cohort map, the map is refused


def _id_key(speaker: str) -> str:
    """A speaker id with case, `-`, `_` and `.` folded, to spot maps written with another convention."""
    return speaker.lower().replace("-", "").replace("_", "").replace(".", "")


def check_cohort_map(attributes: Dict[str, Dict[str, Any]], speakers: Sequence[str], path: Path,
                     examples: int = 3) -> List[str]:
    """Check that a `--cohort-map` covers the scored speakers.

    Args:
      attributes: the map, `{speaker: {attribute: value}}` (`read_speaker_attributes`).
      speakers: the scored speakers (repeats allowed).
      path: the map file, for messages.
      examples: how many ids of each side to name in the error.

    Returns:
      The scored speakers missing from the map (sorted); they form the cohort `(missing)`.

    Raises:
      DataError: fewer than `MIN_MAPPED_SHARE` of the scored speakers are in the map (for
        instance ids written with `_` instead of `-`); the message lists a few unmatched ids
        of each side and says when the ids would match with case, `-`, `_`, `.` ignored.
    """
    scored = sorted(set(speakers))
    missing = [spk for spk in scored if spk not in attributes]
    if not scored or len(scored) - len(missing) >= MIN_MAPPED_SHARE * len(scored):
        return missing
    unused = sorted(spk for spk in attributes if spk not in set(scored))
    folded = {_id_key(spk) for spk in unused}
    hint = ""
    if missing and sum(_id_key(spk) in folded for spk in missing) >= MIN_MAPPED_SHARE * len(missing):
        hint = "; the ids match when case, '-', '_' and '.' are ignored: write the map with the scored ids"
    raise DataError(
        f"{path}: cohort map covers {len(scored) - len(missing)} of {len(scored)} scored speakers "
        f"(scored but not in the map: {', '.join(missing[:examples])}{' ...' if len(missing) > examples else ''}; "
        f"in the map but not scored: {', '.join(unused[:examples]) or 'none'}{' ...' if len(unused) > examples else ''})"
        f"{hint}"
    )
