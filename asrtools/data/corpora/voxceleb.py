"""VoxCeleb1 (`asrtools data prepare voxceleb`) and its official trial lists (`asrtools sv import-trials`).

The layout it reads is the one the VoxCeleb1 archives unpack to, with the meta file and the
official trial lists beside them:

    CORPUS_DIR/wav/idXXXXX/<video>/NNNNN.wav   (vox1_dev_wav.zip + vox1_test_wav.zip, 16 kHz)
    CORPUS_DIR/vox1_meta.csv                   tab-separated: VoxCeleb1 ID, VGGFace1 ID, Gender,
                                               Nationality, Set (dev / test)
    CORPUS_DIR/veri_test2.txt                  official trial list(s): `1 id10270/x6u.../00001.wav id10270/...`

Parsing is lhotse's own VoxCeleb1 code (`lhotse.recipes.voxceleb._prepare_voxceleb_v1`, then
lhotse's `fix_manifests` / `validate_recordings_and_supervisions`, exactly the steps of
`prepare_voxceleb`). The public `prepare_voxceleb` is not called because, given a VoxCeleb1
root, it always downloads the trial list from openslr.org into the working directory, and
nothing here may touch the network; the user's own copy of the official lists is read instead.

Parts are VoxCeleb1's sets: `dev` (1,211 speakers) becomes the toolkit's `train` split minus
`dev_speakers` held-out speakers (the toolkit's `dev` split, for the training's dev-EER model
selection; every k-th speaker in id order, so the choice is deterministic and spread over the
id range), and `test` (40 speakers) becomes `test`. Each speaker row carries `gender`
("female"/"male" after normalisation) and `nationality` from the meta file; the celebrity
names are left out of the toolkit's tables.

Trial lists: `prepare` requires every list named by `--option trials=...` (default
`veri_test2.txt`, the cleaned VoxCeleb1-O list) before lhotse reads any audio, and checks that
every utterance a list names was prepared, so a corpus missing a listed file fails at preparation,
with the line. `asrtools.sv.trial_import.import_trials` (the stage behind `asrtools sv import-trials`) turns a list into
the toolkit's trial format (`label enroll test` with cut ids, lhotse's
`id10270-x6uYqmx31kE-00001` for `id10270/x6uYqmx31kE/00001.wav`) in an `sv trials`-shaped
directory (trials.txt + trials.json), which `asrtools sv score --trials` reads unchanged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Set, Tuple

from lhotse import RecordingSet, SupervisionSet, fix_manifests, validate_recordings_and_supervisions
from lhotse.utils import fastcopy

from asrtools.data.corpora.base import (
    CorpusRecipe,
    PreparedCorpus,
    PrepareOptions,
    call_lhotse,
    register_corpus,
    require_dir,
    require_file,
)
from asrtools.errors import ConfigError, DataError

META_FILE = "vox1_meta.csv"
META_COLUMNS = 5  # VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set
SETS = ("dev", "test")
DEFAULT_TRIALS = "veri_test2.txt"
DEFAULT_DEV_SPEAKERS = 20
# The official lists (https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html), for messages and README.
OFFICIAL_TRIAL_LISTS = {
    "veri_test2.txt": "VoxCeleb1-O (cleaned), test speakers only",
    "veri_test.txt": "VoxCeleb1-O (original)",
    "list_test_all2.txt": "VoxCeleb1-E (cleaned), all VoxCeleb1 speakers",
    "list_test_hard2.txt": "VoxCeleb1-H (cleaned), same nationality and gender",
}


def trial_utterance_id(field: str) -> str:
    """A trial list's utterance (`id10270/x6uYqmx31kE/00001.wav`) as lhotse's recording id.

    The same expression as lhotse's `_prepare_voxceleb_trials` (`id10270-x6uYqmx31kE-00001`),
    which is also the toolkit's cut id (`asrtools data features` names a cut after its recording).
    """
    return "-".join(field.split(".")[0].split("/"))


def read_official_trials(path: Path) -> List[Tuple[int, str, str, int]]:
    """`(label, enroll path, test path, line number)` of an official VoxCeleb trial list.

    Raises:
      DataError: naming the file and line of a line that is not `label path path` with label 0 or 1.
    """
    trials = []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            fields = raw.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise DataError(f"{path}:{lineno}: expected 'label enroll.wav test.wav' with label 0 or 1, "
                                f"got {raw.strip()[:80]!r}")
            trials.append((int(fields[0]), fields[1], fields[2], lineno))
    if not trials:
        raise DataError(f"{path}: the trial list is empty")
    return trials


def read_meta(path: Path) -> Dict[str, Dict[str, str]]:
    """speaker id -> {gender, nationality, set} of `vox1_meta.csv` (checked line by line).

    lhotse parses the same file (`line.strip().split("\\t")` into five fields); this check runs
    first so that a malformed line is reported with its number instead of as a Python error.
    """
    speakers: Dict[str, Dict[str, str]] = {}
    with open(path, encoding="utf-8") as f:
        next(f, None)  # header
        for lineno, raw in enumerate(f, 2):
            if not raw.strip():
                continue
            fields = raw.strip().split("\t")
            if len(fields) != META_COLUMNS:
                raise DataError(f"{path}:{lineno}: expected {META_COLUMNS} tab-separated fields "
                                f"(VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set), got {len(fields)}")
            spk, _name, gender, nationality, which = (x.strip() for x in fields)
            if which not in SETS:
                raise DataError(f"{path}:{lineno}: speaker {spk}: Set must be dev or test, got {which!r}")
            if spk in speakers:
                raise DataError(f"{path}:{lineno}: speaker {spk} is listed twice")
            speakers[spk] = {"gender": gender, "nationality": nationality, "set": which}
    if not speakers:
        raise DataError(f"{path}: no speakers")
    return speakers


@register_corpus
class VoxCeleb1(CorpusRecipe):
    """VoxCeleb1 through lhotse's VoxCeleb1 parser (see the module docstring)."""

    name = "voxceleb"
    description = "VoxCeleb1: wav/idXXXXX/VIDEO/NNNNN.wav, vox1_meta.csv, official trial lists (parts: dev test)"
    default_parts = SETS
    option_help = {
        "trials": f"comma-separated official trial lists under CORPUS_DIR that must be present and complete "
                  f"(default {DEFAULT_TRIALS}; also veri_test.txt, list_test_all2.txt, list_test_hard2.txt)",
        "dev_speakers": f"VoxCeleb1 dev-set speakers held out as the toolkit's dev split "
                        f"(default {DEFAULT_DEV_SPEAKERS}; 0 = no dev split)",
    }

    # ---------------------------------------------------------------- layout

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        unknown = [p for p in parts if p not in SETS]
        if unknown:
            raise ConfigError(f"--parts {unknown[0]}: VoxCeleb1 has the parts {', '.join(SETS)}")
        wav = require_dir(corpus_dir, "wav")
        meta = read_meta(require_file(corpus_dir, META_FILE))
        on_disk = sorted(p.name for p in wav.iterdir() if p.is_dir())
        if not on_disk:
            raise DataError(f"wav/ under {corpus_dir} holds no speaker directories (wav/idXXXXX/VIDEO/NNNNN.wav)")
        stray = [spk for spk in on_disk if spk not in meta]
        if stray:
            raise DataError(f"wav/{stray[0]}/ under {corpus_dir}: speaker {stray[0]} is not in {META_FILE}")
        for part in parts:
            listed = [spk for spk, row in meta.items() if row["set"] == part]
            missing = [spk for spk in listed if not (wav / spk).is_dir()]
            if not listed or len(missing) == len(listed):
                raise DataError(f"wav/{(missing or ['idXXXXX'])[0]}/ not found under {corpus_dir} "
                                f"(no speaker of VoxCeleb1's {part} set is on disk)")

    @staticmethod
    def _trial_lists(options: PrepareOptions) -> List[str]:
        return [n.strip() for n in options.get("trials", DEFAULT_TRIALS).split(",") if n.strip()]

    # ---------------------------------------------------------------- prepare

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        from lhotse.recipes.voxceleb import _prepare_voxceleb_v1

        corpus_dir = Path(corpus_dir)
        for name in self._trial_lists(options):  # before lhotse reads any audio
            require_file(corpus_dir, name)
        dev_speakers = _int_option(options, "dev_speakers", DEFAULT_DEV_SPEAKERS)
        meta = read_meta(corpus_dir / META_FILE)
        parsed = call_lhotse(_prepare_voxceleb_v1, corpus_dir, corpus_dir, max(1, options.num_jobs))
        by_set = {"dev": parsed["train"], "test": parsed["test"]}  # lhotse names VoxCeleb1's dev set "train"
        splits: Dict[str, Tuple[RecordingSet, SupervisionSet]] = {}
        for part in parts:
            recordings, supervisions = fix_manifests(by_set[part]["recordings"], by_set[part]["supervisions"])
            validate_recordings_and_supervisions(recordings, supervisions)
            # lhotse's custom fields (celebrity name, VoxCeleb set) are not speaker attributes here;
            # the stage puts the speaker table's attributes on the supervisions.
            supervisions = SupervisionSet.from_segments(fastcopy(s, custom=None) for s in supervisions)
            if part == "test":
                splits["test"] = (recordings, supervisions)
            else:
                splits.update(_hold_out_dev(recordings, supervisions, dev_speakers))
        notes = self._check_trial_lists(corpus_dir, options, splits)
        speakers = []
        for split, (_, supervisions) in splits.items():
            for spk in sorted({s.speaker for s in supervisions}):
                row = meta[spk]
                speakers.append({"id": spk, "split": split, "gender": row["gender"],
                                 "nationality": row["nationality"]})
        return PreparedCorpus(splits=splits, speakers=speakers, notes=notes)

    def _check_trial_lists(self, corpus_dir: Path, options: PrepareOptions,
                           splits: Mapping[str, Tuple[RecordingSet, SupervisionSet]]) -> List[str]:
        """Every utterance of every trial list was prepared; one note per list."""
        prepared = {r.id for recordings, _ in splits.values() for r in recordings}
        notes = []
        for name in self._trial_lists(options):
            path = corpus_dir / name
            trials = read_official_trials(path)
            for _, enroll, test, lineno in trials:
                for field in (enroll, test):
                    if trial_utterance_id(field) not in prepared:
                        raise DataError(f"{path}:{lineno}: utterance {field} is not among the prepared "
                                        f"utterances (no wav/{field} under {corpus_dir}, or its part was not prepared)")
            target = sum(label for label, _, _, _ in trials)
            notes.append(f"{name}: {len(trials)} trials ({target} target) over prepared utterances; "
                         f"convert it with `asrtools sv import-trials --list {name} ...`")
        return notes


def _int_option(options: PrepareOptions, key: str, default: int) -> int:
    text = options.get(key, str(default))
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"--option {key}={text}: expected a whole number") from None
    if value < 0:
        raise ConfigError(f"--option {key}={text}: must be >= 0")
    return value


def _hold_out_dev(recordings: RecordingSet, supervisions: SupervisionSet, count: int
                  ) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    """`train` and (when count > 0) `dev`: every k-th speaker in id order held out, k = speakers // count."""
    speakers = sorted({s.speaker for s in supervisions})
    if count == 0:
        return {"train": (recordings, supervisions)}
    if len(speakers) - count < 2 or count < 2:
        raise ConfigError(f"--option dev_speakers={count}: VoxCeleb1's dev set here has {len(speakers)} speakers; "
                          f"need at least 2 held out and 2 left for training")
    step = len(speakers) // count
    held: Set[str] = set(speakers[step - 1::step][:count])
    out = {}
    for split, keep in (("train", lambda spk: spk not in held), ("dev", lambda spk: spk in held)):
        sups = supervisions.filter(lambda s: keep(s.speaker)).to_eager()
        ids = {s.recording_id for s in sups}
        out[split] = (recordings.filter(lambda r: r.id in ids).to_eager(), sups)
    return out

