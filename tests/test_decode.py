"""Decoding: greedy / modified beam / streaming greedy, and the `decode` stage outputs."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from click.testing import CliRunner

from asrtools.cli import cli
from asrtools.decoding.beam_search import beam_search_nbest, modified_beam_search
from asrtools.decoding.greedy import greedy_search, initial_context, projected_decoder_out
from asrtools.decoding.recognize import DecodeOptions, load_model, run_decoding, sclite_utt_id
from asrtools.decoding.streaming import streaming_greedy_search
from asrtools.errors import ConfigError
from asrtools.pipeline import StageContext
from asrtools.text.tokenizer import Tokenizer
from asrtools.data.cuts import AsrDataset, load_cuts

from test_train_helpers import OVERFIT_TEXTS, overfit_run

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def trained():
    run = overfit_run()
    model, _ = load_model(run["exp_dir"] / "averaged.pt")
    batch = AsrDataset()[load_cuts(run["corpus"]["cuts_dev"])]
    # Noisy copies make the model unsure, so the searches have real choices to make.
    torch.manual_seed(0)
    noisy = batch["features"] + 1.5 * torch.randn_like(batch["features"])
    return {"run": run, "model": model, "batch": batch, "noisy": noisy,
            "tokenizer": Tokenizer(run["corpus"]["bpe_model"])}


def _encode(model, features, lens):
    with torch.no_grad():
        return model.encoder(features, lens)


@pytest.mark.parametrize("chunk_frames", [4, 8, 20])
@pytest.mark.parametrize("max_sym", [1, 3])
def test_streaming_greedy_equals_offline_greedy(trained, chunk_frames, max_sym):
    model, lens = trained["model"], trained["batch"]["feature_lens"]
    for features in (trained["batch"]["features"], trained["noisy"]):
        offline = greedy_search(model, *_encode(model, features, lens), max_sym_per_frame=max_sym)
        streamed = streaming_greedy_search(model, features, lens, chunk_frames, max_sym_per_frame=max_sym)
        assert streamed == offline


def test_greedy_recovers_texts_and_noise_changes_them(trained):
    model, lens, tokenizer = trained["model"], trained["batch"]["feature_lens"], trained["tokenizer"]
    clean = tokenizer.decode(greedy_search(model, *_encode(model, trained["batch"]["features"], lens)))
    noisy = tokenizer.decode(greedy_search(model, *_encode(model, trained["noisy"], lens)))
    assert clean == trained["batch"]["texts"]
    assert noisy != clean


def test_streaming_rejects_chunks_that_split_a_subsampling_group(trained):
    with pytest.raises(ConfigError, match="multiple"):
        streaming_greedy_search(trained["model"], trained["noisy"], trained["batch"]["feature_lens"], 6)


def test_beam_one_equals_greedy(trained):
    model = trained["model"]
    encoder_out, lens = _encode(model, trained["noisy"], trained["batch"]["feature_lens"])
    assert modified_beam_search(model, encoder_out, lens, beam=1) == greedy_search(model, encoder_out, lens)


def _greedy_path_log_prob(model, encoder_out, length):
    """Log-probability of the single alignment greedy search (1 symbol/frame) follows."""
    context, total = initial_context(model), 0.0
    with torch.no_grad():
        projected = model.joiner.encoder_proj(encoder_out)
        for t in range(length):
            dec = projected_decoder_out(model, [context], encoder_out.device)
            log_probs = model.joiner(projected[t : t + 1], dec, project_input=False).log_softmax(-1)[0]
            token = int(log_probs.argmax())
            total += float(log_probs[token])
            if token != model.blank_id:
                context = context + [token]
    return context[model.decoder.context_size :], total


def test_beam_search_scores_at_least_the_greedy_path(trained):
    model = trained["model"]
    encoder_out, lens = _encode(model, trained["noisy"], trained["batch"]["feature_lens"])
    nbest = beam_search_nbest(model, encoder_out, lens, beam=4)
    greedy = greedy_search(model, encoder_out, lens)
    for b in range(encoder_out.size(0)):
        tokens, score = _greedy_path_log_prob(model, encoder_out[b], int(lens[b]))
        assert tokens == greedy[b]
        assert nbest[b][0].log_prob >= score - 1e-4
        assert [h.log_prob for h in nbest[b]] == sorted((h.log_prob for h in nbest[b]), reverse=True)
        assert len({tuple(h.context) for h in nbest[b]}) == len(nbest[b])  # merged: no duplicates


def test_sclite_utt_id_keeps_speaker_before_first_dash():
    assert sclite_utt_id("spk-1 a", "cut-7 (x)") == "spk_1_a-cut-7__x_"
    assert sclite_utt_id("s01", "s01-utt-3") == "s01-utt-3"  # the corpus's id, not prefixed twice
    assert sclite_utt_id("103-1240", "103-1240-0000") == "103-1240-0000"  # Kaldi LibriSpeech speaker-chapter


def test_decode_cli_writes_recogs_trn_and_skips_when_done(trained, tmp_path):
    run = trained["run"]
    args = ["decode", "--exp-dir", str(run["exp_dir"]), "--checkpoint", "averaged.pt",
            "--cuts", str(run["corpus"]["cuts_dev"]), "--bpe-model", str(run["corpus"]["bpe_model"]),
            "--method", "streaming_greedy", "--chunk-frames", "8", "--out-dir", str(tmp_path / "dec")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "dec" / "recogs.jsonl").read_text().splitlines()]
    assert [r["ref"] for r in records] == [r["hyp"] for r in records]
    assert sorted(r["ref"] for r in records) == sorted(OVERFIT_TEXTS)
    first = records[0]
    assert set(first) == {"cut_id", "utt_id", "speaker", "gender", "ref", "hyp", "duration", "decode_seconds",
                          "custom"}
    assert first["utt_id"] == f"{first['speaker']}-{first['cut_id']}"
    assert first["custom"] == {"region": "north" if first["speaker"] < "spk2" else "south", "zip": "12345"}
    ref_lines = (tmp_path / "dec" / "ref.trn").read_text().splitlines()
    assert ref_lines[0] == f"{first['ref']} ({first['utt_id']})"
    assert len((tmp_path / "dec" / "hyp.trn").read_text().splitlines()) == len(records)
    summary = json.loads((tmp_path / "dec" / "summary.json").read_text())
    assert summary["num_utterances"] == len(records) and summary["options"]["method"] == "streaming_greedy"

    stamp = (tmp_path / "dec" / "recogs.jsonl").stat().st_mtime_ns
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and (tmp_path / "dec" / "recogs.jsonl").stat().st_mtime_ns == stamp


def test_decode_cli_reports_vocabulary_mismatch(trained, tmp_path):
    from asrtools.text.tokenizer import train_bpe

    other = tmp_path / "other.model"
    train_bpe(OVERFIT_TEXTS * 3 + ["BA DO KI LO MU NE SE TA"], other, vocab_size=30)
    run = trained["run"]
    result = CliRunner().invoke(cli, ["decode", "--exp-dir", str(run["exp_dir"]), "--cuts",
                                      str(run["corpus"]["cuts_dev"]), "--bpe-model", str(other),
                                      "--out-dir", str(tmp_path / "dec")])
    assert result.exit_code == 1
    assert "asrtools: error:" in result.output and "30 tokens" in result.output


def test_decoding_resumes_from_finished_shards(trained, tmp_path):
    cuts = load_cuts(trained["run"]["corpus"]["cuts_dev"])
    options = DecodeOptions(method="greedy", shard_size=4)
    out = tmp_path / "stage"
    (out / ".parts").mkdir(parents=True)
    first_ids = [c.id for c in list(cuts)[:4]]
    fake = [{"cut_id": i, "utt_id": i, "ref": "X", "hyp": "FROM-EARLIER-RUN", "duration": 1.0,
             "decode_seconds": 0.0} for i in first_ids]
    (out / ".parts" / "part-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fake))
    ctx = StageContext(out, {}, "fp", True, logging.getLogger("asrtools"))
    run_decoding(ctx, trained["model"], trained["tokenizer"], cuts, options, torch.device("cpu"))
    records = [json.loads(line) for line in (out / "recogs.jsonl").read_text().splitlines()]
    assert [r["hyp"] for r in records[:4]] == ["FROM-EARLIER-RUN"] * 4
    assert [r["hyp"] for r in records[4:]] == [r["ref"] for r in records[4:]]
    assert not (out / ".parts").exists()


def _recogs(out_dir):
    rows = [json.loads(line) for line in (out_dir / "recogs.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "decode_seconds"} for row in rows]


def test_decode_in_processes_and_as_tasks_equals_one_process(trained, tmp_path):
    run = trained["run"]
    base = ["decode", "--exp-dir", str(run["exp_dir"]), "--cuts", str(run["corpus"]["cuts_dev"]),
            "--bpe-model", str(run["corpus"]["bpe_model"]), "--shard-size", "2"]
    for name, jobs in (("one", "1"), ("three", "3")):
        result = CliRunner().invoke(cli, [*base, "-j", jobs, "--out-dir", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert _recogs(tmp_path / "three") == _recogs(tmp_path / "one")
    assert len(_recogs(tmp_path / "one")) == 6  # three shards of two cuts
    # As SLURM array tasks run it: each task its shards, then the command itself merges.
    tasks = tmp_path / "tasks"
    for task in ("2", "1"):
        result = CliRunner().invoke(cli, ["--task", task, *base, "-j", "2", "--out-dir", str(tasks)])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tasks / ".parts").iterdir()) == ["part-00000.jsonl", "part-00001.jsonl",
                                                                  "part-00002.jsonl"]
    assert not (tasks / "recogs.jsonl").exists()
    result = CliRunner().invoke(cli, [*base, "-j", "2", "--out-dir", str(tasks)])
    assert result.exit_code == 0, result.output
    assert _recogs(tasks) == _recogs(tmp_path / "one") and not (tasks / ".parts").exists()
    # The shard size is part of the fingerprint (it decides how a killed run resumes).
    result = CliRunner().invoke(cli, [*base[:-1], "3", "--out-dir", str(tmp_path / "one")])
    assert result.exit_code == 0 and "parameters changed: shard_size" in result.output, result.output


def test_a_part_holding_other_cuts_is_decoded_again(trained, tmp_path):
    cuts = load_cuts(trained["run"]["corpus"]["cuts_dev"])
    options = DecodeOptions(method="greedy", shard_size=4)
    out = tmp_path / "stage"
    (out / ".parts").mkdir(parents=True)
    shifted = [c.id for c in list(cuts)[1:5]]  # e.g. written with another shard size
    stale = [{"cut_id": i, "utt_id": i, "ref": "X", "hyp": "STALE", "duration": 1.0, "decode_seconds": 0.0}
             for i in shifted]
    (out / ".parts" / "part-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    ctx = StageContext(out, {}, "fp", True, logging.getLogger("asrtools"))
    run_decoding(ctx, trained["model"], trained["tokenizer"], cuts, options, torch.device("cpu"))
    records = [json.loads(line) for line in (out / "recogs.jsonl").read_text().splitlines()]
    assert [r["cut_id"] for r in records] == [c.id for c in cuts]
    assert [r["hyp"] for r in records] == [r["ref"] for r in records]
