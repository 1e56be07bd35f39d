"""Parameter and FLOPs accounting (asrtools.models.flops) and `asrtools model info`."""
import dataclasses
import json

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from asrtools.cli import cli
from asrtools.models.build import ModelConfig, build_model
from asrtools.models.encoder import build_encoder
from asrtools.models.flops import cost_table, format_table, lstm_flops, measure_encoder_flops

torch.set_num_threads(1)


@pytest.mark.parametrize("proj", [0, 3])
def test_lstm_flops_match_an_unrolled_lstm(proj):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 7, num_layers=2, proj_size=proj, batch_first=True)
    x = torch.randn(2, 4, 5)
    out_dim = proj or 7
    with FlopCounterMode(display=False) as counter:
        for layer in range(2):
            h = torch.zeros(2, out_dim)
            outs = []
            for t in range(x.size(1)):
                gates = nn.functional.linear(x[:, t], getattr(lstm, f"weight_ih_l{layer}")) + nn.functional.linear(
                    h, getattr(lstm, f"weight_hh_l{layer}")
                )
                h = torch.tanh(gates[:, :7])
                if proj:
                    h = nn.functional.linear(h, getattr(lstm, f"weight_hr_l{layer}"))
                outs.append(h)
            x = torch.stack(outs, dim=1)
    assert lstm_flops(lstm, 2 * 4) == counter.get_total_flops()


def test_subsampling_flops_by_hand():
    enc = build_encoder("lstm", 80, hidden_dim=16, num_layers=1, subsampling_dim=32, subsampling_channels=8)
    flops = measure_encoder_flops(enc, 80, seconds=2.0)
    frames1, freqs1 = 50, 40  # per second after the first stride-2 conv
    frames2, freqs2 = 25, 20
    convs = 2 * (frames1 * freqs1 * 8 * 9 * 1 + frames2 * freqs2 * 8 * 9 * 8)
    linear = 2 * frames2 * (8 * freqs2) * 32
    assert flops.per_module["subsampling.convs"] == pytest.approx(convs)
    assert flops.per_module["subsampling"] == pytest.approx(convs + linear)
    assert flops.per_module["lstm"] == pytest.approx(lstm_flops(enc.lstm.lstm, frames2))
    assert flops.total == pytest.approx(convs + linear + lstm_flops(enc.lstm.lstm, frames2))


def test_convrnnt_children_add_up_and_streaming_costs_the_same():
    torch.manual_seed(0)
    enc = build_encoder("convrnnt", 80, hidden_dim=32, num_layers=1)
    flops = measure_encoder_flops(enc, 80, seconds=2.0)
    assert flops.mode == "streaming"
    assert flops.per_module["frontend"] > 0 and flops.per_module["lstm"] > 0
    assert flops.total == pytest.approx(flops.per_module["frontend"] + flops.per_module["lstm"])
    assert flops.total == pytest.approx(flops.offline_total)


def test_chunked_attention_streams_cheaper_than_whole_utterance():
    enc = build_encoder("conformer", 80, dim=32, num_layers=1, num_heads=2, ffn_dim=32, chunk_size=4, left_context=4)
    flops = measure_encoder_flops(enc, 80, seconds=8.0)
    assert flops.chunk_frames == 32
    assert flops.total < flops.offline_total
    full = build_encoder("conformer", 80, dim=32, num_layers=1, num_heads=2, ffn_dim=32, chunk_size=0)
    assert measure_encoder_flops(full, 80, seconds=2.0).mode == "offline"


def test_cost_table_rows():
    torch.manual_seed(0)
    model = build_model(ModelConfig(encoder="lstm", encoder_params={"hidden_dim": 16, "num_layers": 1}), 30)
    flops = measure_encoder_flops(model.encoder, 80, seconds=1.0)
    rows = cost_table(model, flops, depth=1)
    names = [row.name for row in rows]
    assert names[-1] == "total" and "encoder" in names and "decoder" in names
    assert rows[-1].params == sum(p.numel() for p in model.parameters())
    assert sum(row.params for row in rows if row.depth == 1) == rows[-1].params
    by_name = {row.name: row for row in rows}
    assert by_name["decoder"].flops_per_second is None
    assert by_name["encoder"].flops_per_second == pytest.approx(flops.total)
    assert "encoder" in format_table(rows)


@pytest.mark.parametrize(
    "encoder,params",
    [
        ("lstm", "{hidden_dim: 16, num_layers: 1}"),
        ("convrnnt", "{hidden_dim: 16, num_layers: 1, global_dilations: [1, 2]}"),
        ("conformer", "{dim: 16, num_layers: 1, num_heads: 2, ffn_dim: 16}"),
    ],
)
def test_cli_model_info(tmp_path, encoder, params):
    conf = tmp_path / "train.yaml"
    conf.write_text(f"model:\n  encoder: {encoder}\n  encoder_params: {params}\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["model", "info", str(conf), "--vocab-size", "40", "--seconds", "1"])
    assert result.exit_code == 0, result.output
    assert "GFLOPs/s" in result.output and "encoder" in result.output
    result = runner.invoke(cli, ["model", "info", str(conf), "--vocab-size", "40", "--seconds", "1", "--json"])
    summary = json.loads(result.output)
    model = build_model(ModelConfig(encoder=encoder, encoder_params=yaml.safe_load(params)), 40)
    total = [row for row in summary["modules"] if row["name"] == "total"][0]
    assert total["params"] == summary["params"] == sum(p.numel() for p in model.parameters())
    assert total["flops_per_second"] == pytest.approx(1e9 * summary["gflops_per_second"])
    assert summary["gflops_per_second"] > 0 and summary["schema"] == "asrtools.model_info"


def test_cli_model_info_bad_config(tmp_path):
    conf = tmp_path / "train.yaml"
    conf.write_text("model:\n  encoder: convrnnt\n  encoder_params: {no_such_option: 1}\n")
    result = CliRunner().invoke(cli, ["model", "info", str(conf)])
    assert result.exit_code == 1
    assert "no_such_option" in result.output


def test_recipe_configs_are_comparable_to_the_lstm_baseline():
    from pathlib import Path

    from asrtools.training.config import load_train_config

    conf_dir = Path(__file__).resolve().parents[1] / "egs" / "synth" / "asr" / "conf"
    configs = {name: load_train_config(conf_dir / f"train_{name}.yaml") for name in ("lstm", "convrnnt", "conformer")}
    sizes = {}
    for name, config in configs.items():
        assert config.model.encoder == name
        encoder = build_encoder(config.model.encoder, config.model.feature_dim, **config.model.encoder_params)
        sizes[name] = sum(p.numel() for p in encoder.parameters())
        # everything but the model section, the epochs and the precision (each fills the same
        # 30-minute budget at its own step time, docs/benchmarks.md) is the LSTM recipe's trainer setup
        same = dataclasses.replace(config, model=configs["lstm"].model, num_epochs=configs["lstm"].num_epochs,
                                   amp=configs["lstm"].amp)
        assert same == configs["lstm"]
    for name in ("convrnnt", "conformer"):
        assert abs(sizes[name] - sizes["lstm"]) <= 0.1 * sizes["lstm"], sizes
