"""Speaker embeddings for cohort discovery (`asrtools.fairness.embeddings`, `asrtools cohorts embed`):
the loader's formats and one-line errors, the utterance draw, speaker averaging + L2 normalisation
with the toolkit's speaker model, the file backend, and Resemblyzer when it is installed."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from asrtools.errors import ConfigError, DataError
from asrtools.fairness.embeddings import load_embeddings, parse_encoder, select_cuts, vectors_for

from conftest import run_asrtools
from sv_helpers import TINY_SV_CONFIG, make_sv_corpus


def _unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


# ---------------------------------------------------------------------------- loader


def test_loader_reads_json_npz_and_both_directory_kinds(tmp_path):
    raw = {"b": [3.0, 4.0], "a": [0.0, 2.0]}
    (tmp_path / "e.json").write_text(json.dumps(raw))
    np.savez(tmp_path / "s.npz", speakers=np.array(["b", "a"]), vectors=np.array(list(raw.values())))
    (tmp_path / "cohort_dir").mkdir()
    np.savez(tmp_path / "cohort_dir" / "embeddings.npz", speakers=np.array(["b", "a"]),
             vectors=np.array(list(raw.values())))
    (tmp_path / "sv_dir").mkdir()  # an `asrtools sv embed` directory: speakers.npz with `ids`
    np.savez(tmp_path / "sv_dir" / "speakers.npz", ids=np.array(["b", "a"]), vectors=np.array(list(raw.values())))
    for source in ("e.json", "s.npz", "cohort_dir", "sv_dir"):
        got = load_embeddings(tmp_path / source)
        assert list(got) == ["a", "b"], source
        np.testing.assert_allclose(got["b"], [0.6, 0.8], rtol=1e-6)
        np.testing.assert_allclose(got["a"], [0.0, 1.0], rtol=1e-6)
        assert got["a"].dtype == np.float32
    np.testing.assert_allclose(load_embeddings(tmp_path / "e.json", normalize=False)["b"], [3.0, 4.0])


@pytest.mark.parametrize("content,message", [
    ("{}", "hold no speakers"),
    ('{"a": [1, 2], "b": [1, 2, 3]}', "speaker b has a 3-dim vector, speaker a a 2-dim one"),
    ('{"a": [1, NaN]}', "speaker a's vector holds NaN or infinite values"),
    ('{"a": [1, Infinity]}', "speaker a's vector holds NaN or infinite values"),
    ('{"a": [1, "x"]}', "speaker a's vector is not a list of numbers"),
    ('{"a": [true, 1]}', "speaker a's vector is not a list of numbers"),
    ('{"a": []}', "speaker a has an empty vector"),
    ('{"a": [0, 0]}', "speaker a has an all-zero vector"),
    ('[[1, 2]]', "expected a JSON object"),
    ('{"a": [1, 2]', "cannot be read as JSON"),
])
def test_bad_json_embeddings_are_one_line_errors_naming_the_speaker(tmp_path, content, message):
    path = tmp_path / "e.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as err:
        load_embeddings(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("arrays,message", [
    ({"speakers": np.array(["a", "a"]), "vectors": np.ones((2, 3))}, "speaker a appears twice"),
    ({"speakers": np.array(["a", "b"]), "vectors": np.ones((3, 3))}, "2 speakers but 3 vectors"),
    ({"speakers": np.array(["a"]), "vectors": np.ones(3)}, "numeric \\(S, D\\) array"),
    ({"speakers": np.array(["a", "b"]), "vectors": np.array([[1.0, np.nan], [1.0, 1.0]])}, "speaker a's vector holds NaN"),
    ({"names": np.array(["a"]), "vectors": np.ones((1, 3))}, "need the arrays speakers \\(or ids\\) and vectors"),
    ({"speakers": np.array([], dtype=str), "vectors": np.ones((0, 3))}, "hold no speakers"),
])
def test_bad_npz_embeddings_are_errors(tmp_path, arrays, message):
    path = tmp_path / "e.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_embeddings(path)


def test_loader_refuses_missing_unreadable_and_empty_directories(tmp_path):
    with pytest.raises(DataError, match="do not exist"):
        load_embeddings(tmp_path / "nothing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot be read as .npz"):
        load_embeddings(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="holds neither embeddings.npz nor speakers.npz"):
        load_embeddings(tmp_path)


def test_vectors_for_names_the_missing_speaker():
    emb = {"a": np.ones(2, dtype=np.float32)}
    assert vectors_for(emb, ["a", "a"]).shape == (2, 2)
    with pytest.raises(DataError, match="no vector for speaker b \\(and 1 more\\)"):
        vectors_for(emb, ["a", "b", "c"])


@pytest.mark.parametrize("spec,kind,path", [("resemblyzer", "resemblyzer", None), ("sv:x/a.pt", "sv", Path("x/a.pt")),
                                            ("file:e.json", "file", Path("e.json"))])
def test_parse_encoder(spec, kind, path):
    parsed = parse_encoder(spec)
    assert (parsed.kind, parsed.path, str(parsed)) == (kind, path, spec)


@pytest.mark.parametrize("spec", ["sv", "sv:", "file:", "resemblyzer:x", "ecapa"])
def test_parse_encoder_refuses(spec):
    with pytest.raises(ConfigError, match="expected resemblyzer, sv:<checkpoint> or file:<path>"):
        parse_encoder(spec)


# ---------------------------------------------------------------------------- utterance draw


class _Cut:
    def __init__(self, cut_id: str, speaker: str) -> None:
        self.id = cut_id
        self.supervisions = [type("S", (), {"speaker": speaker})()]


def test_select_cuts_draws_per_speaker_seeded_and_order_free():
    cuts = [_Cut(f"{s}-{u:02d}", s) for s in ("x", "y") for u in range(10)] + [_Cut("z-00", "z")]
    chosen = [c.id for c in select_cuts(cuts, 3, seed=0)]
    assert [c.id for c in select_cuts(list(reversed(cuts)), 3, seed=0)] == chosen
    assert sum(i.startswith("x-") for i in chosen) == 3 and sum(i.startswith("y-") for i in chosen) == 3
    assert "z-00" in chosen  # fewer than 3: all of them
    assert [c.id for c in select_cuts(cuts, 3, seed=1)] != chosen
    assert len(select_cuts(cuts, 0, seed=0)) == len(cuts)


# ---------------------------------------------------------------------------- the stage


@pytest.fixture(scope="module")
def sv_setup(tmp_path_factory):
    """A tiny Fbank corpus and a randomly initialised `task: speaker` checkpoint (no training)."""
    from asrtools.models.checkpoint import save_checkpoint
    from asrtools.models.speaker import build_speaker_model, speaker_config_from_dict, speaker_config_to_dict

    root = tmp_path_factory.mktemp("emb")
    corpus = make_sv_corpus(root / "data", {"dev": 3, "test": 4}, utts=5)
    torch.manual_seed(0)
    config = speaker_config_from_dict(TINY_SV_CONFIG["model"], "tiny")
    model = build_speaker_model(config)
    save_checkpoint(root / "spk.pt", {"task": "speaker", "speaker_model_config": speaker_config_to_dict(config),
                                      "cmn": True,
                                      "model": {f"embedder.{k}": v for k, v in model.state_dict().items()}})
    return root, corpus


def test_sv_encoder_averages_normalised_utterances_per_speaker(sv_setup, tmp_path):
    from asrtools.data.cuts import load_cuts
    from asrtools.sv.extract import checkpoint_embedder

    root, corpus = sv_setup
    out = tmp_path / "emb"
    run_asrtools(["cohorts", "embed", "--cuts", str(corpus["cuts_dev"]), "--cuts", str(corpus["cuts_test"]),
                  "--encoder", f"sv:{root / 'spk.pt'}", "--utts-per-speaker", "3", "--out-dir", str(out), "-j", "2",
                  "--shard-size", "4"])
    with np.load(out / "embeddings.npz") as data:
        speakers, vectors, counts = list(data["speakers"]), data["vectors"], data["counts"]
    assert speakers == sorted(f"{s}{i:02d}" for s, n in (("dev", 3), ("test", 4)) for i in range(n))
    assert vectors.shape == (7, 16) and vectors.dtype == np.float32 and list(counts) == [3] * 7
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    info = json.loads((out / "info.json").read_text())
    assert info["encoder"]["model"] == "checkpoint" and info["dim"] == 16 and info["speakers"] == 7
    assert info["utts_per_speaker"] == {"min": 3, "max": 3, "total": 21}
    # the speaker vector is the normalised mean of its chosen utterances' normalised embeddings
    cuts = {c.id: c for c in load_cuts(corpus["cuts_test"])}
    with np.load(out / "utterances.npz") as data:
        chosen = [str(i) for i, s in zip(data["ids"], data["speakers"]) if s == "test02"]
    embed, _ = checkpoint_embedder(root / "spk.pt")
    expected = _unit(_unit(embed([cuts[i] for i in chosen])).mean(axis=0, keepdims=True))[0]
    np.testing.assert_allclose(vectors[speakers.index("test02")], expected, atol=1e-5)
    assert load_embeddings(out)["test02"] == pytest.approx(expected, abs=1e-5)
    # same answer with all utterances drawn differently -> a different vector
    run_asrtools(["cohorts", "embed", "--cuts", str(corpus["cuts_test"]), "--encoder", f"sv:{root / 'spk.pt'}",
                  "--out-dir", str(tmp_path / "all")])
    assert json.loads((tmp_path / "all" / "info.json").read_text())["utts_per_speaker"]["min"] == 5


def test_file_encoder_keeps_the_cuts_speakers_and_names_a_missing_one(sv_setup, tmp_path):
    _, corpus = sv_setup
    vectors = {f"test{i:02d}": [float(i + 1), 1.0] for i in range(4)}
    source = tmp_path / "mine.json"
    source.write_text(json.dumps({**vectors, "other": [1.0, 0.0]}))
    run_asrtools(["cohorts", "embed", "--encoder", f"file:{source}", "--cuts", str(corpus["cuts_test"]),
                  "--out-dir", str(tmp_path / "ok")])
    got = load_embeddings(tmp_path / "ok")
    assert list(got) == sorted(vectors)
    np.testing.assert_allclose(got["test01"], _unit([[2.0, 1.0]])[0], rtol=1e-6)
    source.write_text(json.dumps({k: v for k, v in vectors.items() if k != "test03"}))
    proc = run_asrtools(["cohorts", "embed", "--encoder", f"file:{source}", "--cuts", str(corpus["cuts_test"]),
                         "--out-dir", str(tmp_path / "bad")], check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"asrtools: error: embeddings {source}: no vector for speaker test03"
    assert not (tmp_path / "bad" / "embeddings.npz").exists()
    source.write_text('{"test00": [1, NaN]}')
    proc = run_asrtools(["cohorts", "embed", "--encoder", f"file:{source}", "--out-dir", str(tmp_path / "nan")],
                        check=False)
    assert proc.returncode == 1 and "speaker test00's vector holds NaN" in proc.stderr
    assert not [p for p in (tmp_path / "nan").glob("*") if not p.name.startswith(".")]  # only control files


def test_encoders_need_cuts_and_a_speaker_checkpoint(sv_setup, tmp_path):
    _, corpus = sv_setup
    proc = run_asrtools(["cohorts", "embed", "--encoder", "resemblyzer", "--out-dir", str(tmp_path / "e")],
                        check=False)
    assert proc.returncode == 1 and "give the cuts to embed (--cuts)" in proc.stderr
    proc = run_asrtools(["cohorts", "embed", "--cuts", str(corpus["cuts_test"]), "--encoder",
                         f"sv:{tmp_path / 'none.pt'}", "--out-dir", str(tmp_path / "e")], check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr


@pytest.mark.skipif(importlib.util.find_spec("resemblyzer") is None,
                    reason="optional: package resemblyzer not installed (scripts/setup_sv_ref_env.sh)")
def test_resemblyzer_embeds_speakers_of_corpus_audio(tiny_corpus, tmp_path):
    out = tmp_path / "emb"
    run_asrtools(["cohorts", "embed", "--cuts", str(tiny_corpus / "fbank" / "cuts_test.jsonl.gz"),
                  "--encoder", "resemblyzer", "--utts-per-speaker", "2", "--out-dir", str(out)])
    got = load_embeddings(out)
    assert len(got) >= 2 and all(v.shape == (256,) for v in got.values())
    info = json.loads((out / "info.json").read_text())
    assert info["encoder"]["model"] == "resemblyzer" and info["utts_per_speaker"]["max"] == 2
    with np.load(out / "embeddings.npz") as data:
        np.testing.assert_allclose(np.linalg.norm(data["vectors"], axis=1), 1.0, rtol=1e-5)
