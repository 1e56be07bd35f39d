"""The encoder interface every transducer encoder implements, and the encoder registry.

Encoders are streaming-first: `forward` processes whole (padded) utterances, and
`streaming_forward` processes consecutive chunks carrying explicit state, so that for a
causal encoder concatenating the chunk outputs equals the whole-utterance output.
Recipes select an encoder by name (`encoder: lstm` in the model config); each encoder
module registers itself with `@register_encoder("name")`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple, Type

import torch
from torch import nn

from asrtools.errors import ConfigError

State = List[torch.Tensor]

_ENCODERS: Dict[str, Type["Encoder"]] = {}


class Encoder(nn.Module):
    """Base class of acoustic encoders.

    Attributes:
      output_dim: C, the feature size of the encoder output.
      subsampling_factor: how many input frames make one output frame.
      chunk_frames_multiple: streaming chunks (except a stream's last) must hold a multiple
        of this many input frames (defaults to `subsampling_factor`).
    """

    output_dim: int
    subsampling_factor: int

    @property
    def chunk_frames_multiple(self) -> int:
        return self.__dict__.get("_chunk_frames_multiple", self.subsampling_factor)

    @chunk_frames_multiple.setter
    def chunk_frames_multiple(self, value: int) -> None:
        self.__dict__["_chunk_frames_multiple"] = int(value)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode whole utterances.

        Args:
          x: (B, T, F) input features, padded.
          x_lens: (B,) int64 number of valid frames of each utterance.

        Returns:
          out: (B, T', C) encoder output, T' = frames after subsampling.
          out_lens: (B,) int64 number of valid output frames.
        """
        raise NotImplementedError

    def init_states(self, batch_size: int, device: torch.device) -> State:
        """The state before the first chunk of `batch_size` streams."""
        raise NotImplementedError

    def streaming_forward(
        self, chunk: torch.Tensor, chunk_lens: torch.Tensor, states: State
    ) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """Encode the next chunk of each stream.

        Args:
          chunk: (B, Tc, F) the next input frames of each stream; Tc is a multiple of
            `subsampling_factor`.
          chunk_lens: (B,) int64 valid frames in this chunk (shorter at a stream's end).
          states: the state returned for the previous chunk (or `init_states`).

        Returns:
          out: (B, Tc', C) encoder output for the chunk.
          out_lens: (B,) int64 valid output frames.
          states: the new state.
        """
        raise NotImplementedError

    @property
    def is_causal(self) -> bool:
        """True if streaming output equals whole-utterance output."""
        return True

    def set_training_progress(self, step: int, epoch: int) -> None:
        """Told before every training step (optimizer updates done, 1-based epoch).

        For encoders whose behaviour follows a schedule (e.g. an annealed gate temperature);
        the default does nothing.
        """

    def auxiliary_losses(self) -> Dict[str, torch.Tensor]:
        """Extra training losses of the last `forward`, already weighted (e.g. a compute
        penalty), by name; the trainer adds them to the transducer loss and logs them.
        The default has none."""
        return {}


def register_encoder(name: str) -> Callable[[Type[Encoder]], Type[Encoder]]:
    """Class decorator registering an encoder under `name` for config lookup."""

    def wrap(cls: Type[Encoder]) -> Type[Encoder]:
        _ENCODERS[name] = cls
        return cls

    return wrap


def build_encoder(name: str, input_dim: int, **kwargs: Any) -> Encoder:
    """Build the registered encoder `name` with `input_dim` features and its kwargs."""
    import asrtools.models  # noqa: F401  (imports every encoder module so they register)

    if name not in _ENCODERS:
        raise ConfigError(f"encoder {name!r} is unknown (known: {', '.join(sorted(_ENCODERS))})")
    try:
        return _ENCODERS[name](input_dim=input_dim, **kwargs)
    except TypeError as err:
        raise ConfigError(f"encoder {name!r}: {err}") from None
