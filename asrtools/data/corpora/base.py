"""The corpus seam: what every corpus adapter gives the `asrtools data prepare` stage.

A `CorpusRecipe` subclass turns one corpus the user already has on disk into a
`PreparedCorpus`: lhotse manifests per toolkit split plus one speaker-table row per speaker.
Adapters parse with lhotse's own `lhotse.recipes.prepare_*` functions wherever lhotse has one
(never a second parser), map lhotse's part names to toolkit split names, and attach the
speaker attributes the corpus gives. Everything else (layout check before the output
directory is touched, attribute normalisation, geocoding, resampling, validation, writing
the files, the stage contract) is done once for all corpora by `asrtools.data.corpora.stage`.

Adding a corpus:

    @register_corpus
    class MyCorpus(CorpusRecipe):
        name = "mycorpus"
        default_parts = ("train", "dev", "test")
        def check_layout(self, corpus_dir, parts): ...   # DataError "dev/ not found under DIR"
        def prepare(self, corpus_dir, parts, options): ... # -> PreparedCorpus

and import its module in `asrtools/data/corpora/__init__.py`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple, Type

from lhotse import RecordingSet, SupervisionSet

from asrtools.errors import AsrtoolsError, ConfigError, DataError, describe

SpeakerRow = Dict[str, Any]
Splits = Dict[str, Tuple[RecordingSet, SupervisionSet]]


@dataclasses.dataclass(frozen=True)
class PrepareOptions:
    """What the stage passes to every adapter's `prepare`.

    Attributes:
      num_jobs: parallel jobs for lhotse's `prepare_*` (its `num_jobs` argument).
      extra: adapter-specific settings from `--option KEY=VALUE`, checked against the
        adapter's `option_help` (e.g. the CSV adapter's column names).
    """

    num_jobs: int = 1
    extra: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def get(self, key: str, default: str = "") -> str:
        """An adapter option, or `default` when not given."""
        return str(self.extra.get(key, default))


@dataclasses.dataclass
class PreparedCorpus:
    """A corpus turned into toolkit manifests and a speaker table.

    Attributes:
      splits: toolkit split name (e.g. "train", "dev", "test", or the corpus's own part
        name) -> (RecordingSet, SupervisionSet). Supervisions carry `speaker`; speaker
        attributes are attached to them by the stage from `speakers`.
      speakers: one row per speaker: `id`, `split`, then every attribute the corpus gives
        (gender, age, accent, native_language, region, city, state, country, lat, lon, zip,
        ...) as raw values, "" (or absent) when unknown. The stage normalises values
        (`speaker_table.normalise_row`) and geocodes places (`asrtools.data.geocode`).
      notes: things the user should know, logged by the stage and written to notes.txt
        (e.g. "SPEAKERS.TXT lists no sex for speaker 123").
    """

    splits: Splits
    speakers: List[SpeakerRow]
    notes: List[str] = dataclasses.field(default_factory=list)


class CorpusRecipe:
    """One corpus adapter (subclass, set the class attributes, register with `register_corpus`).

    Class attributes:
      name: the CORPUS argument of `asrtools data prepare`.
      description: one line for `--help`.
      default_parts: the parts prepared when `--parts` is not given.
      option_help: adapter-specific `--option KEY=VALUE` settings, key -> help text.
    """

    name: str = ""
    description: str = ""
    default_parts: Tuple[str, ...] = ()
    option_help: Mapping[str, str] = {}

    def check_options(self, options: PrepareOptions) -> None:
        """`ConfigError` naming an `--option` key this adapter does not know."""
        for key in options.extra:
            if key not in self.option_help:
                known = ", ".join(sorted(self.option_help)) or "none"
                raise ConfigError(f"--option {key}: not an option of corpus {self.name!r} (known: {known})")

    def resolve_parts(self, corpus_dir: Path, parts: Sequence[str]) -> Tuple[str, ...]:
        """The parts to prepare: `parts` (from `--parts`) or else `default_parts`.

        Adapters whose parts are found on disk (a directory of Kaldi data dirs, a folder of
        CSV tables) override this to list them when `parts` is empty.
        """
        return tuple(parts) or tuple(self.default_parts)

    def check_layout(self, corpus_dir: Path, parts: Sequence[str]) -> None:
        """Raise `DataError` naming the first missing thing, e.g. "test-clean/ not found under DIR".

        Called before anything is written; must be cheap (no audio decoding).
        """
        raise NotImplementedError

    def prepare(self, corpus_dir: Path, parts: Sequence[str], options: PrepareOptions) -> PreparedCorpus:
        """Parse the corpus with lhotse and return its manifests and speaker rows."""
        raise NotImplementedError


CORPORA: Dict[str, Type[CorpusRecipe]] = {}


def register_corpus(cls: Type[CorpusRecipe]) -> Type[CorpusRecipe]:
    """Class decorator: make `cls` available as `asrtools data prepare <cls.name>`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a corpus recipe needs a name")
    if cls.name in CORPORA and CORPORA[cls.name] is not cls:
        raise ValueError(f"corpus {cls.name!r} registered twice ({CORPORA[cls.name].__name__}, {cls.__name__})")
    CORPORA[cls.name] = cls
    return cls


def get_corpus(name: str) -> CorpusRecipe:
    """An instance of the adapter registered as `name`; `ConfigError` listing the known ones."""
    import asrtools.data.corpora  # noqa: F401  (registers the built-in adapters)

    if name not in CORPORA:
        raise ConfigError(f"unknown corpus {name!r} (known: {', '.join(sorted(CORPORA))})")
    return CORPORA[name]()


def call_lhotse(function: Callable[..., Any], corpus_dir: Path, *args: Any, **kwargs: Any) -> Any:
    """Call one of lhotse's `prepare_*` functions; its failure on the user's data becomes a `DataError`.

    lhotse raises assorted exception types on a corrupt corpus (AudioLoadingError naming the
    file for unreadable audio, AssertionError / ValueError for malformed metadata); the user
    gets its first line, prefixed with the function and corpus directory.
    """
    try:
        return function(*args, **kwargs)
    except AsrtoolsError:
        raise
    except Exception as err:  # noqa: BLE001 - any lhotse failure on user data is reported as one line
        message = describe(err).removesuffix(" Details")  # lhotse's AudioLoadingError: "... failed. Details:"
        raise DataError(f"{corpus_dir}: lhotse {function.__name__} failed: {message}") from err


def require_dir(corpus_dir: Path, relative: str) -> Path:
    """`corpus_dir / relative`, or `DataError` "RELATIVE/ not found under CORPUS_DIR"."""
    path = Path(corpus_dir) / relative
    if not path.is_dir():
        raise DataError(f"{relative.rstrip('/')}/ not found under {corpus_dir}")
    return path


def require_file(corpus_dir: Path, relative: str) -> Path:
    """`corpus_dir / relative`, or `DataError` "RELATIVE not found under CORPUS_DIR"."""
    path = Path(corpus_dir) / relative
    if not path.is_file():
        raise DataError(f"{relative} not found under {corpus_dir}")
    return path
