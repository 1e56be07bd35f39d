"""Transducer parts: LSTM encoder streaming, stateless decoder, losses, loss schedule, builder."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asrtools.errors import ConfigError
from asrtools.models.build import ModelConfig, build_model, model_config_from_dict, model_config_to_dict
from asrtools.models.encoder import build_encoder
from asrtools.models.transducer import StatelessDecoder, loss_scales

from streaming_helpers import assert_streaming_equals_offline

torch.set_num_threads(1)


@pytest.mark.parametrize("proj_dim,norm", [(0, "layer"), (16, "layer"), (0, "batch")])
@pytest.mark.parametrize("chunk", [4, 8, 36])
def test_lstm_streaming_equals_offline(proj_dim, norm, chunk):
    torch.manual_seed(0)
    encoder = build_encoder("lstm", 20, hidden_dim=24, num_layers=2, proj_dim=proj_dim, subsampling_dim=16,
                            subsampling_channels=4, dropout=0.1, norm=norm)
    if norm == "batch":  # non-trivial running statistics
        encoder.train()(torch.randn(4, 40, 20) * 3 + 1, torch.tensor([40, 30, 20, 12]))
    encoder.eval()
    x = torch.randn(3, 70, 20)
    x_lens = torch.tensor([70, 53, 9])
    offline, offline_lens = encoder(x, x_lens)
    assert torch.equal(offline_lens, x_lens // 4)
    assert offline.size(-1) == encoder.output_dim == (proj_dim or 24)
    sizes = [min(chunk, 70 - start) for start in range(0, 70, chunk)]
    assert_streaming_equals_offline(encoder, x, x_lens, sizes, atol=1e-6, check_widths=True)


def test_lstm_streaming_keeps_state_of_finished_streams():
    torch.manual_seed(0)
    encoder = build_encoder("lstm", 20, hidden_dim=16, num_layers=1, subsampling_dim=8, subsampling_channels=2).eval()
    states = encoder.init_states(2, torch.device("cpu"))
    _, _, states = encoder.streaming_forward(torch.randn(2, 8, 20), torch.tensor([8, 8]), states)
    h, c = states[-2].clone(), states[-1].clone()
    _, out_lens, new = encoder.streaming_forward(torch.randn(2, 8, 20), torch.tensor([8, 0]), states)
    assert out_lens.tolist() == [2, 0]
    assert torch.equal(new[-2][:, 1], h[:, 1]) and torch.equal(new[-1][:, 1], c[:, 1])
    assert not torch.equal(new[-2][:, 0], h[:, 0])


def test_lstm_rejects_bad_sizes():
    with pytest.raises(ConfigError, match="proj_dim"):
        build_encoder("lstm", 80, hidden_dim=32, proj_dim=32)
    with pytest.raises(ConfigError, match="lstm"):
        build_encoder("lstm", 80, hidden_size=32)


def test_lstm_batch_norm_statistics_ignore_padding():
    def encoder():
        torch.manual_seed(0)
        return build_encoder("lstm", 20, hidden_dim=8, num_layers=1, subsampling_dim=8, subsampling_channels=2,
                             dropout=0.0, norm="batch").train()

    x, x_lens = torch.randn(2, 40, 20), torch.tensor([40, 20])
    plain, padded = encoder(), encoder()
    plain(x, x_lens)
    padded(torch.cat([x, torch.full((2, 40, 20), 50.0)], dim=1), x_lens)
    assert torch.allclose(plain.norm.norm.running_mean, padded.norm.norm.running_mean, atol=1e-6)
    assert torch.allclose(plain.norm.norm.running_var, padded.norm.norm.running_var, atol=1e-5)


def test_lstm_loads_checkpoints_from_before_causal_lstm():
    """Checkpoints of the recipe's first LSTM runs name the stack `encoder.lstm.weight_ih_l0`, ..."""
    torch.manual_seed(0)
    config = ModelConfig(encoder="lstm", encoder_params={"hidden_dim": 12, "num_layers": 2, "subsampling_dim": 16,
                                                         "subsampling_channels": 4},
                         feature_dim=20, decoder_dim=8, context_size=2, joiner_dim=8)
    trained = build_model(config, 10)
    # Old names: the LSTM stack before CausalLstm, and the front-end LayerNorm before `norm:` existed.
    old_style = {k.replace("encoder.lstm.lstm.", "encoder.lstm.").replace("encoder.norm.norm.", "encoder.norm."): v
                 for k, v in trained.state_dict().items()}
    assert "encoder.lstm.weight_ih_l1" in old_style and "encoder.norm.weight" in old_style
    fresh = build_model(config, 10)
    fresh.load_state_dict(old_style)  # strict
    for key, value in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_stateless_decoder_decoding_context_matches_training():
    torch.manual_seed(0)
    decoder = StatelessDecoder(vocab_size=12, decoder_dim=8, blank_id=0, context_size=3).eval()
    tokens = [5, 7, 2, 9]
    train_out = decoder(F.pad(torch.tensor([tokens]), (1, 0), value=0))  # (1, U+1, D)
    context = [-1, -1, 0] + tokens
    for u in range(len(tokens) + 1):
        step = decoder(torch.tensor([context[u : u + 3]]), need_pad=False)
        torch.testing.assert_close(step[0, 0], train_out[0, u])


def test_loss_scales_follow_icefall_warmup():
    assert loss_scales(0, 100, 0.5) == (1.0, 0.0)
    simple, pruned = loss_scales(50, 100, 0.5)
    assert simple == pytest.approx(0.75) and pruned == pytest.approx(0.5)
    assert loss_scales(100, 100, 0.5) == (0.5, 1.0)
    assert loss_scales(5000, 100, 0.3) == (0.3, 1.0)
    assert loss_scales(0, 0, 0.5) == (0.5, 1.0)


def _tiny_model(vocab_size=10):
    config = ModelConfig(encoder_params={"hidden_dim": 16, "num_layers": 1, "subsampling_dim": 8,
                                         "subsampling_channels": 2}, feature_dim=20, decoder_dim=8, joiner_dim=8)
    return build_model(config, vocab_size), config


def test_forward_gives_finite_losses_that_backpropagate_everywhere():
    torch.manual_seed(0)
    model, _ = _tiny_model()
    x = torch.randn(3, 40, 20)
    x_lens = torch.tensor([40, 33, 21])
    y = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0], [7, 0, 0, 0]])
    y_lens = torch.tensor([4, 2, 1])
    losses = model(x, x_lens, y, y_lens, prune_range=3, backend="native")
    assert losses.num_frames == int((x_lens // 4).sum())
    assert torch.isfinite(losses.simple) and torch.isfinite(losses.pruned)
    (losses.simple + losses.pruned).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_batched_losses_equal_sum_of_single_utterance_losses():
    torch.manual_seed(0)
    model, _ = _tiny_model()
    model.eval()
    x = torch.randn(2, 36, 20)
    x_lens = torch.tensor([36, 24])
    y = torch.tensor([[1, 2, 3], [4, 5, 9]])
    y_lens = torch.tensor([3, 2])
    with torch.no_grad():
        batched = model(x, x_lens, y, y_lens, prune_range=2, backend="native")
        singles = [model(x[i : i + 1, : x_lens[i]], x_lens[i : i + 1], y[i : i + 1, : y_lens[i]], y_lens[i : i + 1],
                         prune_range=2, backend="native") for i in range(2)]
    torch.testing.assert_close(batched.simple, sum(s.simple for s in singles))
    torch.testing.assert_close(batched.pruned, sum(s.pruned for s in singles))


def test_model_config_round_trips_and_rejects_unknown_encoder():
    _, config = _tiny_model()
    assert model_config_from_dict(model_config_to_dict(config)) == config
    with pytest.raises(ConfigError, match="unknown"):
        build_model(ModelConfig(encoder="no-such-encoder"), 10)
    with pytest.raises(ConfigError, match="decoder_dim"):
        model_config_from_dict({"decoder_dim": 0})
