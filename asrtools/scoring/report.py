"""The files of a WER directory (`asrtools score wer`) and reading them back.

A WER directory holds:

- ``wer.json``: schema ``asrtools.wer`` version 1: mode, normalisation, inputs, ``total`` and
  per-``speakers`` counts (sents, words, hyp_words, corr, sub, del, ins, err, sent_err, wer),
  ``missing_hyp`` ids, the most frequent substitutions / deletions / insertions, and the
  ``provenance`` of the scoring run (`asrtools.utils.provenance`);
- ``utts.jsonl``: one line per utterance: id, speaker, normalised ref and hyp text, ``ops``
  (the alignment as a string over C/S/D/I), its counts, and the cohort fields (``custom``);
- ``errs.txt``: sclite-style per-utterance alignments (REF/HYP/Eval lines) followed by the
  per-word error statistics;
- ``wer.sys``: the per-speaker summary in sclite's ``.sys`` layout;
- ``ref.trn`` / ``hyp.trn``: the normalised transcripts in trn format (sclite can rescore them).
"""
from __future__ import annotations

import heapq
import itertools
import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from asrtools.errors import DataError
from asrtools.pipeline import atomic_write_json
from asrtools.scoring.io import format_trn, load_pairs, read_utt2spk, report_with_utt2spk, write_lines
from asrtools.scoring.wer import Alignment, ErrorCounts, UtteranceScore, WerReport, score_pairs
from asrtools.utils.provenance import format_provenance, provenance

WER_SCHEMA = "asrtools.wer"
WER_SCHEMA_VERSION = 1
WER_JSON, UTTS_JSONL, ERRS_TXT, SYS_TXT = "wer.json", "utts.jsonl", "errs.txt", "wer.sys"
TOP_ERRORS = 50


def error_statistics(report: WerReport) -> Dict[str, Counter]:
    """Counters of substitution pairs `(ref, hyp)`, deleted words and inserted words."""
    subs: Counter = Counter()
    dels: Counter = Counter()
    ins: Counter = Counter()
    counts = report.counts_array()
    for utt in itertools.compress(report.utterances, counts[:, 1:].any(axis=1).tolist()):
        ref, hyp = utt.alignment.ref, utt.alignment.hyp
        r = h = 0
        for op in utt.alignment.ops:
            if op == "C":
                r += 1
                h += 1
            elif op == "S":
                subs[(ref[r], hyp[h])] += 1
                r += 1
                h += 1
            elif op == "D":
                dels[ref[r]] += 1
                r += 1
            else:
                ins[hyp[h]] += 1
                h += 1
    return {"substitutions": subs, "deletions": dels, "insertions": ins}


def _most_common(counter: Counter, limit: int) -> List[Tuple[Any, int]]:
    """The `limit` most frequent items, ties in key order."""
    return heapq.nsmallest(limit, counter.items(), key=lambda kv: (-kv[1], kv[0]))


def wer_json(report: WerReport, inputs: Dict[str, Optional[str]], stats: Dict[str, Counter]) -> Dict[str, Any]:
    """The `wer.json` document of `report`."""
    return {
        "schema": WER_SCHEMA,
        "version": WER_SCHEMA_VERSION,
        "mode": report.mode,
        "normalizer": report.normalizer,
        "inputs": inputs,
        "total": report.total.to_dict(),
        "speakers": {spk: c.to_dict() for spk, c in report.by_speaker().items()},
        "missing_hyp": {"count": len(report.missing_hyp), "ids": list(report.missing_hyp)},
        "top_errors": {
            "substitutions": [[r, h, n] for (r, h), n in _most_common(stats["substitutions"], TOP_ERRORS)],
            "deletions": [[w, n] for w, n in _most_common(stats["deletions"], TOP_ERRORS)],
            "insertions": [[w, n] for w, n in _most_common(stats["insertions"], TOP_ERRORS)],
        },
        "files": {"utts": UTTS_JSONL, "errs": ERRS_TXT, "sys": SYS_TXT, "ref_trn": "ref.trn", "hyp_trn": "hyp.trn"},
        "provenance": provenance(),
    }


def utterance_record(utt: UtteranceScore, counts: Sequence[int], missing_hyp: bool) -> Dict[str, Any]:
    """The `utts.jsonl` object of one utterance.

    Args:
      utt: the scored utterance.
      counts: its `(corr, sub, del, ins)`.
      missing_hyp: whether its hypothesis was missing (scored as empty).
    """
    corr, sub, dele, ins = counts
    record = {
        "id": utt.id,
        "speaker": utt.speaker,
        "ref": " ".join(utt.alignment.ref),
        "hyp": " ".join(utt.alignment.hyp),
        "ops": utt.alignment.ops,
        "words": corr + sub + dele,
        "corr": corr,
        "sub": sub,
        "del": dele,
        "ins": ins,
        "err": sub + dele + ins,
        "custom": dict(utt.custom),
    }
    if missing_hyp:
        record["missing_hyp"] = True
    return record


_RUNS = re.compile(r"C+|[SDI]")


def format_alignment(utt: UtteranceScore, counts: Sequence[int]) -> str:
    """sclite `pralign`-style block: id, Scores, REF, HYP, Eval lines and a blank line.

    Columns are padded to the longer word; a missing word shows as asterisks.
    """
    ref, hyp = utt.alignment.ref, utt.alignment.hyp
    ref_cells: List[str] = []
    hyp_cells: List[str] = []
    eval_cells: List[str] = []
    r = h = 0
    for run in _RUNS.finditer(utt.alignment.ops):
        op = run.group()
        if op[0] == "C":  # a run of correct words is one cell (joined) on every line
            chunk = " ".join(ref[r : r + len(op)])
            ref_cells.append(chunk)
            hyp_cells.append(chunk)
            eval_cells.append(" " * len(chunk))
            r += len(op)
            h += len(op)
        elif op == "S":
            width = max(len(ref[r]), len(hyp[h]))
            ref_cells.append(ref[r].ljust(width))
            hyp_cells.append(hyp[h].ljust(width))
            eval_cells.append("S".ljust(width))
            r += 1
            h += 1
        elif op == "D":
            ref_cells.append(ref[r])
            hyp_cells.append("*" * len(ref[r]))
            eval_cells.append("D".ljust(len(ref[r])))
            r += 1
        else:
            ref_cells.append("*" * len(hyp[h]))
            hyp_cells.append(hyp[h])
            eval_cells.append("I".ljust(len(hyp[h])))
            h += 1
    corr, sub, dele, ins = counts
    return (
        f"id: ({utt.id})\nScores: (#C #S #D #I) {corr} {sub} {dele} {ins}\n"
        f"REF:  {' '.join(ref_cells)}\nHYP:  {' '.join(hyp_cells)}\nEval: {' '.join(eval_cells)}\n"
    )


def format_error_statistics(stats: Dict[str, Counter], limit: int = TOP_ERRORS) -> List[str]:
    """Most frequent substitutions (`ref ==> hyp`), deletions and insertions, sclite-dtl style."""
    lines: List[str] = []
    sections = (
        ("CONFUSION PAIRS", stats["substitutions"], lambda k: f"{k[0]} ==> {k[1]}"),
        ("DELETIONS", stats["deletions"], str),
        ("INSERTIONS", stats["insertions"], str),
    )
    for title, counter, show in sections:
        lines.append(f"{title:<33}Total {sum(counter.values())}  Distinct {len(counter)}")
        for rank, (key, count) in enumerate(_most_common(counter, limit), start=1):
            lines.append(f"  {rank:4d}: {count:5d}  ->  {show(key)}")
        lines.append("")
    return lines


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


_SYS_COLUMNS = ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")


def _sys_row_values(counts: ErrorCounts) -> Tuple[List[float], List[str]]:
    """`[Corr, Sub, Del, Ins, Err, S.Err]` percentages and their marks for one row.

    Like sclite, a row without reference words shows word counts marked `*`.
    """
    word_counts = [counts.corr, counts.sub, counts.del_, counts.ins, counts.err]
    serr = _pct(counts.sent_err, counts.sents)
    if counts.words == 0:
        return [float(c) for c in word_counts] + [serr], ["*"] * 5 + [" "]
    return [_pct(c, counts.words) for c in word_counts] + [serr], [" "] * 6


def format_sys(report: WerReport, title: str) -> List[str]:
    """The per-speaker summary in sclite's `.sys` layout (percentages of reference words).

    Sum/Avg is over all words; Mean, S.D. (n - 1 divisor) and Median are over speakers,
    as sclite computes them: speakers without reference words show counts (marked `*`)
    and are left out of the word-percentage statistics (marked `+`).
    """
    speakers = report.by_speaker()
    total = report.total
    name_width = max([len(s) for s in speakers] + [7])
    snt_width = max(len(str(total.sents)), 5)
    wrd_width = max(len(str(total.words)), 5)

    def line(name: str, snt: str, wrd: str, cells: Sequence[str]) -> str:
        return f"| {name:<{name_width}}| {snt:>{snt_width}} {wrd:>{wrd_width}} |" + " ".join(cells) + "|"

    def row(name: str, counts: ErrorCounts) -> str:
        values, marks = _sys_row_values(counts)
        cells = [f"{v:5.0f}{m}" if m == "*" else f"{v:5.1f}{m}" for v, m in zip(values, marks)]
        return line(name, str(counts.sents), str(counts.words), cells)

    def stat_row(name: str, func: Any, with_words: List[ErrorCounts]) -> str:
        every = list(speakers.values())
        snt = func([float(c.sents) for c in every]) if every else 0.0
        wrd = func([float(c.words) for c in every]) if every else 0.0
        mark = "+" if len(with_words) < len(every) else " "
        pcts = [func([_sys_row_values(c)[0][k] for c in with_words]) if with_words else 0.0 for k in range(5)]
        serr = func([_sys_row_values(c)[0][5] for c in every]) if every else 0.0
        cells = [f"{v:5.1f}{mark}" for v in pcts] + [f"{serr:5.1f} "]
        return line(name, f"{snt:.1f}", f"{wrd:.1f}", cells)

    def stdev(values: List[float]) -> float:
        return statistics.stdev(values) if len(values) > 1 else 0.0

    header = line("SPKR", "# Snt", "# Wrd", [f"{h:>5} " for h in _SYS_COLUMNS])
    rule = "|" + "+".join("-" * len(part) for part in header.split("|")[1:-1]) + "|"
    double = "|" + "=" * (len(header) - 2) + "|"
    lines = ["SYSTEM SUMMARY PERCENTAGES by SPEAKER".center(len(header)), ""]
    lines += ["," + "-" * (len(header) - 2) + ".", "|" + title.center(len(header) - 2) + "|"]
    lines += ["|" + "-" * (len(header) - 2) + "|", header]
    for name, counts in speakers.items():
        lines += [rule, row(name, counts)]
    lines += [double, row("Sum/Avg", total), double]
    with_words = [c for c in speakers.values() if c.words > 0]
    lines.append(stat_row(" Mean", statistics.fmean, with_words))
    lines.append(stat_row(" S.D.", stdev, with_words))
    lines.append(stat_row("Median", statistics.median, with_words))
    lines.append("`" + "-" * (len(header) - 2) + "'")
    if len(with_words) < len(speakers):
        lines += ["", "* No reference words for this/these speaker(s): word counts instead of percents.",
                  "+ Speaker(s) without reference words are left out."]
    return lines


def write_wer_dir(
    report: WerReport, out_dir: Path, inputs: Dict[str, Optional[str]], title: str = "asrtools"
) -> Dict[str, Any]:
    """Write every file of a WER directory (each atomically); return the wer.json document.

    Args:
      report: the scored utterances.
      out_dir: the directory (a stage directory).
      inputs: the input paths, recorded in wer.json.
      title: the system title in the `.sys` summary.
    """
    out_dir = Path(out_dir)
    missing = set(report.missing_hyp)
    counts = report.counts_array().tolist()
    stats = error_statistics(report)
    encode = json.JSONEncoder(ensure_ascii=False).encode
    write_lines(
        out_dir / UTTS_JSONL,
        [encode(utterance_record(u, c, u.id in missing)) for u, c in zip(report.utterances, counts)],
    )
    errs = [f"# asrtools score wer: {report.mode} alignment, {len(report.utterances)} utterances\n"]
    errs.extend(format_alignment(u, c) for u, c in zip(report.utterances, counts))
    errs.extend(format_error_statistics(stats))
    write_lines(out_dir / ERRS_TXT, errs)
    write_lines(out_dir / SYS_TXT, format_sys(report, title))
    write_lines(out_dir / "ref.trn", [format_trn(u.alignment.ref, u.id) for u in report.utterances])
    write_lines(out_dir / "hyp.trn", [format_trn(u.alignment.hyp, u.id) for u in report.utterances])
    doc = wer_json(report, inputs, stats)
    atomic_write_json(out_dir / WER_JSON, doc)
    return doc


def is_wer_dir(path: Path) -> bool:
    """True if `path` is a directory written by `write_wer_dir`."""
    return Path(path).is_dir() and (Path(path) / WER_JSON).is_file() and (Path(path) / UTTS_JSONL).is_file()


def read_json(path: Path) -> Any:
    """The JSON document in `path`; `DataError` naming the file when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read ({err})") from None


def read_wer_dir(path: Path) -> WerReport:
    """Read a WER directory back into a `WerReport` (alignments included).

    Args:
      path: a directory written by `asrtools score wer`.
    """
    path = Path(path)
    meta = read_json(path / WER_JSON)
    if meta.get("schema") != WER_SCHEMA or meta.get("version") != WER_SCHEMA_VERSION:
        raise DataError(
            f"{path / WER_JSON}: not an {WER_SCHEMA} v{WER_SCHEMA_VERSION} file "
            f"(schema {meta.get('schema')!r} v{meta.get('version')!r})"
        )
    utterances = []
    missing = []
    utts_path = path / UTTS_JSONL
    with open(utts_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                rec = json.loads(line)
                alignment = Alignment(tuple(rec["ref"].split()), tuple(rec["hyp"].split()), rec["ops"])
                _check_alignment(alignment)
                utterances.append(UtteranceScore(rec["id"], rec["speaker"], alignment, rec.get("custom") or {}))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise DataError(f"{utts_path}:{lineno}: malformed utterance record ({err})") from None
            if rec.get("missing_hyp"):
                missing.append(rec["id"])
    return WerReport(meta["mode"], utterances, missing, meta.get("normalizer", {}))


def _check_alignment(alignment: Alignment) -> None:
    n_ref = sum(op != "I" for op in alignment.ops)
    n_hyp = sum(op != "D" for op in alignment.ops)
    if n_ref != len(alignment.ref) or n_hyp != len(alignment.hyp) or set(alignment.ops) - set("CSDI"):
        raise ValueError("ops do not match the ref/hyp words")


def load_report(
    source: Path, mode: str = "levenshtein", normalizer: Optional[Any] = None, allow_missing: bool = False,
    utt2spk: Optional[Path] = None,
) -> WerReport:
    """Scores from a WER directory, or by scoring a recogs.jsonl / decode directory.

    Args:
      source: a directory written by `asrtools score wer` (read as is: `mode` and
        `normalizer` were applied when it was made), a recogs.jsonl file or a decode dir.
      mode: alignment mode when scoring.
      normalizer: text normaliser when scoring (None: whitespace split).
      allow_missing: score missing hypotheses as empty when scoring.
      utt2spk: a Kaldi `utt2spk` file setting every utterance's speaker (see `load_pairs`).
    """
    if is_wer_dir(source):
        report = read_wer_dir(source)
        return report if utt2spk is None else report_with_utt2spk(report, read_utt2spk(utt2spk), utt2spk)
    return score_pairs(load_pairs(Path(source), allow_missing=allow_missing, utt2spk=utt2spk), mode, normalizer)


DECODE_SUMMARY = "summary.json"


def decode_summary_path(source: Path) -> Optional[Path]:
    """The `summary.json` of the decode behind a scored source, if it can be found.

    Args:
      source: what was scored: a decode directory, a recogs.jsonl or trn file in one, a WER
        directory or its `wer.json` (then the decode it recorded as `--ref` / `--hyp`, or the
        WER directory's parent, the `decode_*/wer` layout).
    """
    source = Path(source)
    wer_file = source / WER_JSON if source.is_dir() else source
    candidates = [source] if source.is_dir() else [source.parent]
    if wer_file.name == WER_JSON and wer_file.is_file():
        try:
            inputs = json.loads(wer_file.read_text(encoding="utf-8")).get("inputs") or {}
        except (OSError, ValueError, AttributeError):
            inputs = {}
        for key in ("ref", "hyp"):
            if inputs.get(key):
                recorded = Path(inputs[key])
                candidates.append(recorded if recorded.is_dir() else recorded.parent)
        candidates.append(wer_file.parent.parent)
    for directory in candidates:
        if (directory / DECODE_SUMMARY).is_file():
            return directory / DECODE_SUMMARY
    return None


def decode_provenance(sources: Mapping[str, Path]) -> Dict[str, Optional[Dict[str, Any]]]:
    """name -> the provenance recorded in the summary.json of each source's decode (None if none)."""
    found: Dict[str, Optional[Dict[str, Any]]] = {}
    for name, source in sources.items():
        summary = decode_summary_path(source)
        record = read_json(summary) if summary is not None else None
        found[name] = record.get("provenance") if isinstance(record, dict) else None
    return found


def provenance_section(run: Mapping[str, Any], decodes: Mapping[str, Optional[Mapping[str, Any]]]) -> str:
    """The "## Provenance" Markdown section of a scoring page.

    Args:
      run: the provenance of the scoring run (`provenance()`).
      decodes: name -> provenance of the decode that made each scored input (None: not found
        or written before provenance was recorded).
    """
    lines = ["## Provenance", "", f"- scoring: {format_provenance(run)}"]
    lines += [f"- decode of {name}: {format_provenance(record)}" for name, record in decodes.items()]
    return "\n".join(lines) + "\n"
