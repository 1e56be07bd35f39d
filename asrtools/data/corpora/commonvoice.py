"""Mozilla Common Voice (English by default) -> toolkit manifests + speaker table.

Layout (a release as Mozilla ships it, unpacked):

    CORPUS_DIR/en/{train,dev,test}.tsv      (also validated / invalidated / other, as --parts)
    CORPUS_DIR/en/clips/common_voice_en_<N>.mp3

`--corpus-dir` is the release directory (e.g. `cv-corpus-17.0-2024-03-15`, English taken when
present, else its only language) or the language directory itself (`.../en`). Parsing is
lhotse's `prepare_commonvoice`; it reads the TSV columns client_id, path, sentence, age, gender,
accents and variant, which current releases have; an older release's TSVs (`accent`, no
`variant`) are handed to lhotse as a scratch copy with the column renamed or added empty, the
clips read where they are. Any other missing column is one line naming the TSV. lhotse skips TSV rows whose clip is missing without a
word, so `check_layout` reads every requested TSV first and names the first row whose clip is
not on disk (or that has the wrong number of fields or no sentence).

Speakers are Common Voice's client ids. Their attributes come from the clips' TSV rows (a
contributor can change their profile between clips: the most frequent non-empty value wins and
the number of contributors with conflicting values is reported): `gender` (Common Voice's
"male_masculine"/"female_feminine" -> "male"/"female", other answers kept), `age` (the decade
label, e.g. "twenties"; Common Voice's "fourties" spelled "forties"), `accents` (the free text
as given, several joined with "|"), `accent` (a coarse form: Common Voice's predefined accent
labels and the short codes of releases <= 7 mapped to one word, e.g. "us", "england",
"south_asia"; any other free text -> "other"), and `country` where the coarse accent names one
country or UK nation ("England English" -> "England"), which the stage's geocoder places at
its population centre: Common Voice says nothing finer about where a contributor is. MP3 clips are decoded by libsndfile through `soundfile` (no
ffmpeg needed).
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

from lhotse import RecordingSet, SupervisionSet
from lhotse.utils import fastcopy

from asrtools.data.corpora.base import CorpusRecipe, PreparedCorpus, PrepareOptions, register_corpus
from asrtools.errors import ConfigError, DataError

SPLITS = ("train", "dev", "test", "validated", "invalidated", "other")
# The columns lhotse 1.33's prepare_commonvoice reads from every row.
LHOTSE_COLUMNS = ("client_id", "path", "sentence", "age", "gender", "accents", "variant")
# Older releases lack some of them: `variant` (added in 2023) and `accents` (called `accent` up to
# release 7). Their TSVs are given to lhotse with the column renamed or added empty.
OPTIONAL_COLUMNS = ("accents", "variant")

_GENDERS = {"male_masculine": "male", "female_feminine": "female", "male": "male", "female": "female"}
_AGES = {"fourties": "forties"}

# Coarse accent: Common Voice's predefined English accent labels (releases >= 8) and the short
# codes of the `accent` column of releases <= 7 -> (coarse accent, the one country it names or "").
_COARSE_ACCENTS: Dict[str, Tuple[str, str]] = {
    "united states english": ("us", "United States"), "us": ("us", "United States"),
    "england english": ("england", "England"), "england": ("england", "England"),
    "scottish english": ("scotland", "Scotland"), "scotland": ("scotland", "Scotland"),
    "welsh english": ("wales", "Wales"), "wales": ("wales", "Wales"),
    "northern irish": ("northern_ireland", "Northern Ireland"),
    "irish english": ("ireland", "Ireland"), "ireland": ("ireland", "Ireland"),
    "canadian english": ("canada", "Canada"), "canada": ("canada", "Canada"),
    "australian english": ("australia", "Australia"), "australia": ("australia", "Australia"),
    "new zealand english": ("new_zealand", "New Zealand"), "newzealand": ("new_zealand", "New Zealand"),
    "india and south asia (india, pakistan, sri lanka)": ("south_asia", ""), "indian": ("south_asia", ""),
    "southern african (south africa, zimbabwe, namibia)": ("southern_africa", ""),
    "african": ("africa", ""),
    "filipino": ("philippines", "Philippines"), "philippines": ("philippines", "Philippines"),
    "hong kong english": ("hong_kong", "Hong Kong"), "hongkong": ("hong_kong", "Hong Kong"),
    "malaysian english": ("malaysia", "Malaysia"), "malaysia": ("malaysia", "Malaysia"),
    "singaporean english": ("singapore", "Singapore"), "singapore": ("singapore", "Singapore"),
    "west indies and bermuda (bahamas, bermuda, jamaica, trinidad)": ("west_indies", ""),
    "bermuda": ("west_indies", "Bermuda"), "southatlandtic": ("south_atlantic", ""),
}


def coarse_accent(accents: str) -> Tuple[str, str]:
    """`(coarse accent, country)` of a Common Voice accents value ("" when empty, "other" for free text).

    Several accents ("|"-joined) take the first one that is a predefined label.
    """
    labels = [a.strip() for a in accents.split("|") if a.strip()]
    if not labels:
        return "", ""
    for label in labels:
        if label.lower() in _COARSE_ACCENTS:
            return _COARSE_ACCENTS[label.lower()]
    return "other", ""


def language_dir(corpus_dir: Path) -> Path:
    """The language folder: `corpus_dir` itself when it holds clips/, else its `en/`, else its only language."""
    from lhotse.recipes.commonvoice import COMMONVOICE_LANGS

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"{corpus_dir}: corpus directory not found")
    if (corpus_dir / "clips").is_dir() or any(corpus_dir.glob("*.tsv")):
        return corpus_dir
    if (corpus_dir / "en").is_dir():
        return corpus_dir / "en"
    found = sorted(p.name for p in corpus_dir.iterdir() if p.is_dir() and p.name in COMMONVOICE_LANGS)
    if len(found) == 1:
        return corpus_dir / found[0]
    if not found:
        raise DataError(f"en/ not found under {corpus_dir} (no Common Voice language folder with clips/ and TSVs)")
    raise DataError(f"{corpus_dir}: several languages ({', '.join(found)}) and no en/: "
                    f"give the language folder as --corpus-dir")


def _check_tsv(tsv: Path, clips: Path) -> int:
    """Rows of one split TSV, after checking its columns, field counts, sentences and clips (lhotse's reader)."""
    rows = 0
    with open(tsv, "r", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in LHOTSE_COLUMNS if c not in OPTIONAL_COLUMNS and c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{tsv}: no '{missing[0]}' column (a Common Voice TSV has "
                            f"{', '.join(LHOTSE_COLUMNS)}; accents/variant may be absent in old releases)")
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise DataError(f"{tsv}:{line}: wrong number of tab-separated fields")
            if not row["sentence"].strip():
                raise DataError(f"{tsv}:{line}: empty sentence for clip {row['path']}")
            if not row["client_id"].strip():
                raise DataError(f"{tsv}:{line}: empty client_id for clip {row['path']}")
            if not os.path.isfile(clips / row["path"]):
                raise DataError(f"{tsv}:{line}: clip {row['path']} not found in {clips}")
            rows += 1
    return rows


def unreadable_audio(err: Exception) -> DataError:
    """A lhotse AudioLoadingError (its message names the file) as one line naming the file."""
    match = re.search(r"from '([^']+)' failed", str(err))
    what = match.group(1) if match else "an audio file"
    return DataError(f"{what}: cannot read the audio (lhotse: {str(err).strip().splitlines()[-1][:200]})")


@register_corpus
class CommonVoice(CorpusRecipe):
    """Common Voice through lhotse's `prepare_commonvoice`; speakers are client ids."""

    name = "commonvoice"
    description = "Mozilla Common Voice: LANG/{train,dev,test}.tsv + LANG/clips/*.mp3 (English by default)"
    default_parts = ("train", "dev", "test")
    option_help: Mapping[str, str] = {}

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        unknown = [p for p in parts if p not in SPLITS]
        if unknown:
            raise ConfigError(f"--parts {unknown[0]}: not a Common Voice split (known: {', '.join(SPLITS)})")
        lang_dir = language_dir(corpus_dir)
        clips = lang_dir / "clips"
        if not clips.is_dir():
            raise DataError(f"{lang_dir.name}/clips/ not found under {lang_dir.parent}")
        for part in parts:
            tsv = lang_dir / f"{part}.tsv"
            if not tsv.is_file():
                raise DataError(f"{lang_dir.name}/{part}.tsv not found under {lang_dir.parent}")
            if _check_tsv(tsv, clips) == 0:
                raise DataError(f"{tsv}: no clips listed")

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        from lhotse.audio.utils import AudioLoadingError
        from lhotse.recipes import prepare_commonvoice

        lang_dir = language_dir(corpus_dir)
        # lhotse writes its own manifest copies into output_dir: a scratch directory, never out_dir.
        with tempfile.TemporaryDirectory(prefix="asrtools-cv-") as scratch:
            source_dir, notes = lhotse_readable(lang_dir, parts, Path(scratch))
            try:
                manifests = prepare_commonvoice(source_dir.parent, Path(scratch) / "manifests", languages=[lang_dir.name],
                                                splits=list(parts), num_jobs=options.num_jobs)
            except AudioLoadingError as err:
                raise unreadable_audio(err) from None
        splits = {part: (with_clips_in(manifests[lang_dir.name][part]["recordings"], source_dir, lang_dir),
                         manifests[lang_dir.name][part]["supervisions"]) for part in parts}
        speakers, speaker_notes = speaker_rows(splits, parts)
        notes += speaker_notes
        return PreparedCorpus(splits={part: (recordings, without_raw_attributes(supervisions))
                                      for part, (recordings, supervisions) in splits.items()},
                              speakers=speakers, notes=notes)


def lhotse_readable(lang_dir: Path, parts: Sequence[str], scratch: Path) -> Tuple[Path, List[str]]:
    """The language folder lhotse should read, and a note: `lang_dir` itself when its TSVs have every
    column lhotse reads, else a scratch copy of the TSVs with `accent` renamed `accents` and/or an
    empty `variant` added, its clips/ a link to the real one (an old release)."""
    headers = {}
    for part in parts:
        with open(lang_dir / f"{part}.tsv", encoding="utf-8") as f:
            headers[part] = f.readline().rstrip("\n").split("\t")
    if all(set(LHOTSE_COLUMNS) <= set(header) for header in headers.values()):
        return lang_dir, []
    copy = scratch / "corpus" / lang_dir.name
    copy.mkdir(parents=True)
    (copy / "clips").symlink_to((lang_dir / "clips").resolve(), target_is_directory=True)
    changed = set()
    for part, header in headers.items():
        with open(lang_dir / f"{part}.tsv", encoding="utf-8", newline="") as f_in, \
                open(copy / f"{part}.tsv", "w", encoding="utf-8", newline="") as f_out:
            reader = csv.DictReader(f_in, delimiter="\t", quoting=csv.QUOTE_NONE)
            fields = ["accents" if c == "accent" else c for c in header]
            fields += [c for c in OPTIONAL_COLUMNS if c not in fields]
            changed |= set(fields) - set(header)
            # joined by hand: a field read this way holds no tab or newline, and quotes stay as they are
            f_out.write("\t".join(fields) + "\n")
            for row in reader:
                row = {("accents" if k == "accent" else k): v for k, v in row.items()}
                f_out.write("\t".join(row.get(c, "") for c in fields) + "\n")
    return copy, [f"an older Common Voice release: column(s) {', '.join(sorted(changed))} absent from its TSVs "
                  "(accent read as accents; variant empty)"]


def with_clips_in(recordings: RecordingSet, parsed_dir: Path, lang_dir: Path) -> RecordingSet:
    """`recordings` pointing at `lang_dir/clips` when lhotse read them through a scratch copy's link."""
    if parsed_dir == lang_dir:
        return recordings
    real = lang_dir / "clips"
    return RecordingSet.from_recordings(
        fastcopy(r, sources=[fastcopy(src, source=str(real / Path(src.source).name)) for src in r.sources])
        for r in recordings)


def without_raw_attributes(supervisions: SupervisionSet) -> SupervisionSet:
    """The supervisions without lhotse's per-clip gender/age/accents: the stage attaches each
    speaker's one normalised row instead (a contributor's answers can differ between clips)."""
    return SupervisionSet.from_segments(dataclasses.replace(s, gender=None, custom=None) for s in supervisions)


def _most_common(values: Counter) -> Tuple[str, bool]:
    """The most frequent non-empty value (ties: alphabetical) and whether several non-empty values occur."""
    filled = [(v, n) for v, n in values.items() if v]
    if not filled:
        return "", False
    filled.sort(key=lambda vn: (-vn[1], vn[0]))
    return filled[0][0], len(filled) > 1


def speaker_rows(splits: Mapping[str, Tuple[object, object]], parts: Sequence[str]) -> Tuple[List[Dict[str, str]], List[str]]:
    """One row per client id from the supervisions lhotse made, and notes on conflicts and overlaps.

    A speaker's `split` is the first of `parts` they appear in (Common Voice's train/dev/test
    share no contributors; validated/invalidated/other overlap them).
    """
    values: Dict[str, Dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    split_of: Dict[str, str] = {}
    in_parts: Dict[str, set] = defaultdict(set)
    for part in parts:
        _, supervisions = splits[part]
        for sup in supervisions:
            split_of.setdefault(sup.speaker, part)
            in_parts[sup.speaker].add(part)
            custom = sup.custom or {}
            values[sup.speaker]["gender"][str(sup.gender or "").strip()] += 1
            values[sup.speaker]["age"][str(custom.get("age") or "").strip()] += 1
            values[sup.speaker]["accents"][str(custom.get("accents") or "").strip()] += 1
            values[sup.speaker]["variant"][str(custom.get("variant") or "").strip()] += 1
    rows, conflicts = [], Counter()
    for speaker in sorted(values):
        picked: Dict[str, str] = {}
        for field, counter in values[speaker].items():
            picked[field], conflicting = _most_common(counter)
            conflicts[field] += conflicting
        accent, country = coarse_accent(picked["accents"])
        gender = picked["gender"].lower()
        rows.append({"id": speaker, "split": split_of[speaker], "gender": _GENDERS.get(gender, gender),
                     "age": _AGES.get(picked["age"].lower(), picked["age"].lower()), "accent": accent,
                     "accents": picked["accents"], "variant": picked["variant"], "country": country})
    notes = [f"{field}: {n} contributors gave different values on different clips; the most frequent is kept"
             for field, n in sorted(conflicts.items()) if n]
    overlapping = sum(1 for p in in_parts.values() if len(p) > 1)
    if overlapping:
        notes.append(f"{overlapping} speakers appear in several parts ({', '.join(parts)}); "
                     "speakers.csv gives each the first")
    return rows, notes

