"""`asrtools data prepare csv`: CSV/TSV tables (audio, transcript, speaker, attribute columns) -> manifests + speakers.

Also the synthetic-layout path of item 7 of issue 27: `asrtools data manifests` on a corpus
written by hand with only the required fields, and `--resample`.
"""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from lhotse import RecordingSet, SupervisionSet

from asrtools.cli import cli
from fake_corpora import assert_one_line_error, read_speakers_csv, run_prepare, sentence, write_audio

HEADER = "path\ttranscript\tspeaker_id\tgender\tzip\tcity\tnoise"


def _table(corpus: Path, split: str, rows, header: str = HEADER, sep: str = "\t", sample_rate: int = 16000) -> Path:
    """Write the audio of `rows` (dicts with `path` and `transcript`) and `<split>.tsv|csv` listing them."""
    columns = header.split(sep)
    for row in rows:
        if row.get("path") and not row.get("_no_audio"):
            write_audio(corpus / row["path"], row.get("transcript") or "HELLO", sample_rate)
    lines = [header] + [sep.join(str(row.get(c, "")) for c in columns) for row in rows]
    path = corpus / f"{split}{'.tsv' if sep == chr(9) else '.csv'}"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rows(speakers, offset=0):
    places = {"ann": ("F", "02139", ""), "bob": ("m", "", "Edinburgh"), "cy": ("female", "", "Xyzzyville"),
              "dee": ("M", "", "")}
    return [{"path": f"clips/{s}_{u}.wav", "transcript": sentence(offset + 10 * i + u), "speaker_id": s,
             "gender": places[s][0], "zip": places[s][1], "city": places[s][2], "noise": "quiet" if u else "cafe"}
            for i, s in enumerate(speakers) for u in range(2)]


def test_tables_give_manifests_and_a_geocoded_speaker_table(tmp_path):
    corpus = tmp_path / "corpus"
    _table(corpus, "train", _rows(["ann", "bob"]))
    _table(corpus, "test", _rows(["cy", "dee"], offset=100))
    out = tmp_path / "out"
    result = run_prepare("csv", corpus, out, "--option", "utterance_columns=noise")
    assert result.exit_code == 0, result.output
    speakers = read_speakers_csv(out / "speakers.csv")
    assert {s: (r["split"], r["gender"], r["placed"]) for s, r in speakers.items()} == {
        "ann": ("train", "female", "zip"), "bob": ("train", "male", "city"),
        "cy": ("test", "female", "unplaced"), "dee": ("test", "male", "unplaced")}
    assert (speakers["ann"]["lat"], speakers["ann"]["lon"]) == ("42.36470", "-71.10420")
    assert "city 'Xyzzyville'" in speakers["cy"]["place_detail"]
    assert speakers["dee"]["place_detail"] == "no lat/lon, zip, city, region, state or country given"
    assert "noise" not in speakers["ann"]  # a per-utterance column stays on the supervisions
    sups = SupervisionSet.from_file(out / "supervisions_train.jsonl.gz").to_eager()
    first = sups["ann_0"]
    assert first.text == sentence(0) and first.speaker == "ann" and first.gender == "female"
    assert first.custom == {"noise": "cafe", "zip": "02139", "lat": 42.3647, "lon": -71.1042}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["test"]["speakers"] == 2 and stats["train"]["utterances"] == 4


def test_csv_with_named_columns_segments_and_ids(tmp_path):
    corpus = tmp_path / "corpus"
    write_audio(corpus / "long.wav", "A B C D E F G H")  # 2.6 s
    (corpus / "dev.csv").write_text("utt,file,words,who,start,end,accent\n"
                                    "u1,long.wav,A B C D,p1,0.0,1.3,scottish\n"
                                    "u2,long.wav,E F G H,p1,1.3,2.6,scottish\n")
    out = tmp_path / "out"
    result = run_prepare("csv", corpus, out, "--option", "text_column=words", "--option", "speaker_column=who",
                         "--option", "id_column=utt", "--option", "audio_column=file")
    assert result.exit_code == 0, result.output
    recordings = RecordingSet.from_file(out / "recordings_dev.jsonl.gz").to_eager()
    sups = SupervisionSet.from_file(out / "supervisions_dev.jsonl.gz").to_eager()
    assert list(recordings.ids) == ["long"] and [(s.id, s.start, s.duration) for s in sups] == [("u1", 0.0, 1.3),
                                                                                        ("u2", 1.3, 1.3)]
    assert read_speakers_csv(out / "speakers.csv")["p1"]["accent"] == "scottish"


def test_broken_tables_fail_naming_the_item(tmp_path):
    def case(n, rows, *words, parts=(), header=HEADER, layout=False, options=("utterance_columns=noise",)):
        corpus = tmp_path / f"c{n}"
        _table(corpus, "train", rows, header=header)
        extra = [*(["--parts", " ".join(parts)] if parts else []), *[x for o in options for x in ("--option", o)]]
        assert_one_line_error(run_prepare("csv", corpus, corpus / "out", *extra), corpus / "out", *words,
                              layout=layout)

    good = _rows(["ann", "bob"])
    case(0, good, "test.csv (or test.tsv) not found under", parts=("train", "test"), layout=True)
    case(1, [*good[:3], {**good[3], "_no_audio": True, "path": "clips/gone.wav"}],
         "train.tsv:5: utterance gone: audio file", "gone.wav not found")
    case(2, [*good[:3], {**good[3], "transcript": ""}], "train.tsv:5: utterance bob_1: empty transcript")
    case(3, [*good[:3], {**good[3], "gender": "F"}],
         "train.tsv:5: speaker bob: gender 'F' differs from 'm' on train.tsv:4", "utterance_columns=gender")
    case(4, good, "no speaker column", header="path\ttranscript\tgender\tzip\tcity\tnoise")
    case(5, good, "--option colour: not an option of corpus 'csv'", options=("colour=blue",), layout=True)
    case(6, good, "speaker ann: noise 'quiet' differs from 'cafe'", options=())
    corpus = tmp_path / "c7"
    _table(corpus, "train", good)
    (corpus / "clips" / "ann_1.wav").write_bytes(b"not audio at all" * 20)
    assert_one_line_error(run_prepare("csv", corpus, corpus / "out", "--option", "utterance_columns=noise"),
                          corpus / "out", "train.tsv:3: utterance ann_1: cannot read audio")


def _synth_layout(root: Path, rate: int) -> Path:
    """A corpus in the synthetic layout with only the required fields (no region/engine/zip/... nor zipcodes.csv)."""
    root.mkdir(parents=True)
    (root / "speakers.jsonl").write_text(json.dumps({"id": "spk1"}) + "\n" + json.dumps({"id": "spk2"}) + "\n")
    rows = []
    for n, speaker in enumerate(("spk1", "spk1", "spk2")):
        write_audio(root / "wav" / f"u{n}.wav", sentence(n), rate)
        rows.append({"id": f"u{n}", "speaker": speaker, "text": sentence(n), "wav": f"wav/u{n}.wav",
                     "split": "test"})
    (root / "utterances.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_data_manifests_needs_no_synthetic_only_field_and_resamples_on_request(tmp_path):
    corpus = _synth_layout(tmp_path / "c", 22050)
    runner = CliRunner()
    result = runner.invoke(cli, ["data", "manifests", "--corpus-dir", str(corpus), "--out-dir", str(tmp_path / "m")])
    assert result.exit_code == 1 and "has sample rate 22050 Hz, expected 16000 (--resample 16000" in result.stderr
    result = runner.invoke(cli, ["data", "manifests", "--corpus-dir", str(corpus), "--resample", "16000",
                                 "--out-dir", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    recording = RecordingSet.from_file(tmp_path / "m" / "recordings_test.jsonl.gz").to_eager()["u0"]
    assert recording.sampling_rate == 16000 and recording.load_audio().shape[1] == recording.num_samples
    sup = SupervisionSet.from_file(tmp_path / "m" / "supervisions_test.jsonl.gz").to_eager()["u2"]
    assert sup.speaker == "spk2" and sup.gender is None and sup.custom == {}
    result = runner.invoke(cli, ["data", "manifests", "--corpus-dir", str(corpus), "--resample", "16000",
                                 "--sample-rate", "8000", "--out-dir", str(tmp_path / "m2")])
    assert result.exit_code == 1 and "--resample 16000 and --sample-rate 8000 disagree" in result.stderr
