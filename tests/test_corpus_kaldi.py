"""`asrtools data prepare kaldi`: Kaldi data dirs (lhotse's load_kaldi_data_dir) -> manifests + speaker table.

Covers the acceptance case (every spk2<attr> file becomes a speaker-table column and a
supervision field), a directory of data dirs as splits, segments, resampling on request, and
broken data dirs (one error line naming the item, nothing written).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from lhotse import RecordingSet, SupervisionSet

from fake_corpora import (
    assert_one_line_error,
    read_speakers_csv,
    run_prepare,
    sentence,
    write_kaldi_dir,
)

ATTRIBUTES = {
    "gender": {"s0": "f", "s1": "m", "s2": "f"},
    "accent": {"s0": "scottish", "s1": "irish", "s2": "american"},
    "region": {"s0": "Edinburgh", "s1": "Southern England", "s2": "Ohio"},
    "age": {"s0": "30", "s1": "45"},  # s2 has none
}


def _utterances(speakers, per_speaker=2, offset=0):
    return [(f"{s}-u{u}", s, sentence(offset + 10 * i + u)) for i, s in enumerate(speakers) for u in range(per_speaker)]


def _data_dir(root: Path, **kwargs) -> Path:
    return write_kaldi_dir(root / "data" / "test", _utterances(["s0", "s1", "s2"]), root / "audio", ATTRIBUTES, **kwargs)


def test_kaldi_dir_gives_manifests_and_every_spk2_attribute(tmp_path):
    data_dir = _data_dir(tmp_path, segments=True, utt2dur=True)
    out = tmp_path / "out"
    result = run_prepare("kaldi", data_dir, out)
    assert result.exit_code == 0, result.output
    for name in ("recordings_test.jsonl.gz", "supervisions_test.jsonl.gz", "stats.json", "speakers.csv", "notes.txt"):
        assert (out / name).is_file(), name
    speakers = read_speakers_csv(out / "speakers.csv")
    assert list(speakers) == ["s0", "s1", "s2"]
    assert {k: speakers["s0"][k] for k in ("split", "gender", "accent", "region", "age", "placed")} == \
        {"split": "test", "gender": "female", "accent": "scottish", "region": "Edinburgh", "age": "30",
         "placed": "city"}
    assert (float(speakers["s0"]["lat"]), float(speakers["s0"]["lon"])) == (55.95206, -3.19648)
    assert speakers["s2"]["placed"] == "state" and speakers["s2"]["age"] == ""
    assert speakers["s1"]["placed"] == "unplaced" and speakers["s1"]["lat"] == ""
    notes = (out / "notes.txt").read_text()
    assert "age: 1 of 3 speakers have none (s2)" in notes and "1 of 3 speakers could not be placed (s1)" in notes
    # segments: one recording per speaker, the supervisions cut out of it, carrying the attributes
    recordings = RecordingSet.from_file(out / "recordings_test.jsonl.gz")
    supervisions = SupervisionSet.from_file(out / "supervisions_test.jsonl.gz").to_eager()
    assert sorted(recordings.ids) == ["rec_s0", "rec_s1", "rec_s2"] and len(supervisions) == 6
    second = supervisions["s0-u1"]
    assert second.recording_id == "rec_s0" and second.start > 1.0 and second.gender == "female"
    assert second.custom == {"accent": "scottish", "age": "30", "region": "Edinburgh", "lat": 55.95206,
                             "lon": -3.19648}
    assert second.text == sentence(1)


def test_cohort_discovery_reads_the_prepared_speaker_table(tmp_path):
    from asrtools.errors import DataError
    from asrtools.fairness.speakers import read_csv_rows, table_from_counts

    out = tmp_path / "out"
    assert run_prepare("kaldi", _data_dir(tmp_path), out).exit_code == 0
    rows = read_csv_rows(out / "speakers.csv", "id", "speaker")
    placed = table_from_counts(["s0", "s2"], [1, 2], [10, 10], [2, 2], rows)
    assert placed.coordinates()[0].tolist() == [55.95206, -3.19648]
    unplaced = table_from_counts(["s0", "s1"], [1, 2], [10, 10], [2, 2], rows)
    with pytest.raises(DataError) as info:
        unplaced.coordinates()
    message = str(info.value)
    assert message.startswith("speaker 's1': no numeric 'lat'") and "region 'Southern England'" in message
    assert "zip/city/region/state/country" in message


def test_directory_of_data_dirs_is_one_split_each_and_parts_pick_some(tmp_path):
    root = tmp_path / "data"
    write_kaldi_dir(root / "train", _utterances(["a", "b"]), tmp_path / "audio", {"gender": {"a": "m", "b": "f"}})
    write_kaldi_dir(root / "test", _utterances(["c"], offset=50), tmp_path / "audio", {"gender": {"c": "f"}})
    result = run_prepare("kaldi", root, tmp_path / "all")
    assert result.exit_code == 0, result.output
    assert {r["id"]: r["split"] for r in read_speakers_csv(tmp_path / "all" / "speakers.csv").values()} == \
        {"a": "train", "b": "train", "c": "test"}
    result = run_prepare("kaldi", root, tmp_path / "one", "--parts", "test")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "one").glob("*.gz")) == ["recordings_test.jsonl.gz",
                                                                      "supervisions_test.jsonl.gz"]
    # a single data dir is named after itself, or by --option split=NAME
    result = run_prepare("kaldi", root / "test", tmp_path / "named", "--option", "split=eval")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "named" / "recordings_eval.jsonl.gz").is_file()
    assert_one_line_error(run_prepare("kaldi", root, tmp_path / "x", "--parts", "dev"), tmp_path / "x",
                          "dev/ not found under", layout=True)


def test_other_sample_rate_is_refused_or_resampled_on_request(tmp_path):
    data_dir = write_kaldi_dir(tmp_path / "d", _utterances(["s0"]), tmp_path / "audio", sample_rate=8000)
    assert_one_line_error(run_prepare("kaldi", data_dir, tmp_path / "o"), tmp_path / "o",
                          "recording s0-u0 has sample rate 8000 Hz, expected 16000", "--resample 16000")
    result = run_prepare("kaldi", data_dir, tmp_path / "o", "--resample", "16000")
    assert result.exit_code == 0, result.output
    recording = RecordingSet.from_file(tmp_path / "o" / "recordings_d.jsonl.gz").to_eager()["s0-u0"]
    audio = recording.load_audio()
    assert recording.sampling_rate == 16000 and audio.shape[1] == recording.num_samples
    assert abs(audio.shape[1] - 2 * sf.info(str(tmp_path / "audio" / "s0-u0.wav")).frames) <= 2


def _broken(tmp_path: Path, change) -> Path:
    data_dir = _data_dir(tmp_path)
    change(data_dir, tmp_path / "audio")
    return data_dir


def test_broken_data_dirs_fail_naming_the_item(tmp_path):
    cases = {
        "missing audio": (lambda d, a: (a / "s1-u0.wav").unlink(), ["wav.scp:3: recording s1-u0: audio file",
                                                                    "not found"], True),
        "text line without audio": (lambda d, a: (d / "text").write_text((d / "text").read_text() + "ghost HELLO\n"),
                                    ["text: utterance ghost has no audio"], True),
        "utterance without text": (lambda d, a: (d / "text").write_text(
            "".join(l + "\n" for l in (d / "text").read_text().splitlines() if not l.startswith("s2-u1"))),
            ["utterance s2-u1 (in wav.scp) has no line in text"], True),
        "piped command": (lambda d, a: (d / "wav.scp").write_text(
            (d / "wav.scp").read_text().replace(str(a / "s0-u0.wav"), "sox x.flac -t wav - |")),
            ["wav.scp:1: recording s0-u0: piped commands are not run"], True),
        "no utt2spk": (lambda d, a: (d / "utt2spk").unlink(), ["utt2spk not found under"], True),
        "empty transcript": (lambda d, a: (d / "text").write_text((d / "text").read_text().replace(
            "s1-u1 " + sentence(11), "s1-u1")), ["text:4: utterance s1-u1 has an empty transcript"], True),
        "attribute line without a value": (lambda d, a: (d / "spk2accent").write_text("s0 scottish\ns1\n"),
                                           ["spk2accent:2: expected 2 fields"], True),
        "unreadable audio": (lambda d, a: (a / "s0-u1.wav").write_bytes(b"RIFF....WAVEnot really audio" * 10),
                             ["s0-u1", "s0-u1.wav"], False),
    }
    for n, (name, (change, words, layout)) in enumerate(cases.items()):
        case_dir = tmp_path / f"case{n}"
        data_dir = _broken(case_dir, change)
        assert_one_line_error(run_prepare("kaldi", data_dir, case_dir / "out"), case_dir / "out", *words,
                              layout=layout)


def test_segments_become_one_featurised_cut_per_utterance(tmp_path):
    from click.testing import CliRunner
    from lhotse import CutSet

    from asrtools.cli import cli

    out = tmp_path / "out"
    assert run_prepare("kaldi", _data_dir(tmp_path, segments=True), out).exit_code == 0
    result = CliRunner().invoke(cli, ["data", "features", "--manifest-dir", str(out), "--out-dir",
                                      str(tmp_path / "fbank"), "-j", "1"])
    assert result.exit_code == 0, result.output
    cuts = CutSet.from_file(tmp_path / "fbank" / "cuts_test.jsonl.gz").to_eager()
    assert sorted(cuts.ids) == [f"s{s}-u{u}" for s in range(3) for u in range(2)]
    cut = cuts["s0-u1"]
    assert cut.recording_id == "rec_s0" and cut.start > 1.0 and len(cut.supervisions) == 1
    assert cut.supervisions[0].text == sentence(1) and cut.load_features().shape[0] == cut.num_frames
