"""Build a transducer from its config section (encoder chosen by name).

A model config (the `model:` section of a training YAML) names a registered encoder and its
keyword arguments; the vocabulary size comes from the BPE model at build time:

    model:
      encoder: lstm
      encoder_params: {hidden_dim: 320, num_layers: 3, output_dim: 256}
      feature_dim: 80
      decoder_dim: 256
      context_size: 2
      joiner_dim: 256
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict

from asrtools.config import from_dict, to_dict
from asrtools.models.encoder import build_encoder
from asrtools.models.transducer import Joiner, StatelessDecoder, Transducer


@dataclasses.dataclass
class ModelConfig:
    """Transducer architecture.

    Attributes:
      encoder: registered encoder name (`lstm`, ...).
      encoder_params: keyword arguments of that encoder's constructor (checked by it).
      feature_dim: F, input feature size (80-dim fbank).
      decoder_dim: D, prediction network size.
      context_size: tokens seen by the stateless prediction network.
      joiner_dim: J, joint network hidden size.
      blank_id: the blank id (the tokenizer reserves 0).
    """

    encoder: str = "lstm"
    encoder_params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    feature_dim: int = 80
    decoder_dim: int = 256
    context_size: int = 2
    joiner_dim: int = 256
    blank_id: int = 0

    def validate(self) -> None:
        for name in ("feature_dim", "decoder_dim", "context_size", "joiner_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def build_model(config: ModelConfig, vocab_size: int) -> Transducer:
    """Build the transducer described by `config` for `vocab_size` output ids.

    Args:
      config: the architecture.
      vocab_size: V, from the tokenizer (`Tokenizer.vocab_size`).

    Returns:
      A freshly initialised `Transducer` (parameters drawn from torch's global RNG).
    """
    encoder = build_encoder(config.encoder, input_dim=config.feature_dim, **config.encoder_params)
    decoder = StatelessDecoder(vocab_size, config.decoder_dim, config.blank_id, config.context_size)
    joiner = Joiner(encoder.output_dim, config.decoder_dim, config.joiner_dim, vocab_size)
    return Transducer(encoder, decoder, joiner, vocab_size)


def model_config_to_dict(config: ModelConfig) -> Dict[str, Any]:
    """Plain-dict form stored in checkpoints (loadable with `weights_only=True`)."""
    return to_dict(config)


def model_config_from_dict(data: Dict[str, Any], source: str = "checkpoint") -> ModelConfig:
    """Inverse of `model_config_to_dict`, with the same strict checks as a YAML config."""
    return from_dict(ModelConfig, dict(data), source)
