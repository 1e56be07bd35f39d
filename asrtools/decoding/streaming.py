"""Chunk-wise streaming greedy decoding.

Features are fed to `encoder.streaming_forward` `chunk_frames` input frames at a time with
the encoder's carried state, and each chunk's encoder output is decoded at once by
`greedy_search_step` with the carried decoder state. For a causal encoder the chunk outputs
concatenate to the whole-utterance output, so the result equals offline greedy search.
"""
from __future__ import annotations

from typing import List

import torch

from asrtools.decoding.greedy import greedy_search_step, init_greedy_state
from asrtools.errors import ConfigError
from asrtools.models.encoder import Encoder
from asrtools.models.transducer import Transducer


def check_chunk_frames(encoder: Encoder, chunk_frames: int, option: str = "chunk_frames") -> int:
    """`chunk_frames` if it is a positive multiple of `encoder.chunk_frames_multiple`.

    Args:
      encoder: the streaming encoder.
      chunk_frames: input frames per chunk.
      option: the name of the setting, for the error message (e.g. `--chunk-frames`).

    Raises:
      ConfigError: naming the setting, the value and the required multiple.
    """
    multiple = encoder.chunk_frames_multiple
    if chunk_frames < 1 or chunk_frames % multiple:
        raise ConfigError(f"{option} {chunk_frames} must be a positive multiple of {multiple} "
                          f"for the {type(encoder).__name__} encoder")
    return chunk_frames


@torch.no_grad()
def streaming_greedy_search(
    model: Transducer,
    features: torch.Tensor,
    feature_lens: torch.Tensor,
    chunk_frames: int,
    max_sym_per_frame: int = 1,
) -> List[List[int]]:
    """Decode a batch of streams chunk by chunk.

    Args:
      model: the transducer (in eval mode).
      features: (B, T, F) padded input features.
      feature_lens: (B,) int64 valid input frames.
      chunk_frames: input frames per chunk, a positive multiple of the encoder's
        `subsampling_factor`.
      max_sym_per_frame: at most this many non-blank symbols per encoder frame.

    Returns:
      B token-id lists (no blanks).
    """
    check_chunk_frames(model.encoder, chunk_frames)
    batch_size, device = features.size(0), features.device
    encoder_states = model.encoder.init_states(batch_size, device)
    decoder_state = init_greedy_state(model, batch_size, device)
    for start in range(0, features.size(1), chunk_frames):
        chunk = features[:, start : start + chunk_frames]
        chunk_lens = (feature_lens - start).clamp(min=0, max=chunk.size(1))
        out, out_lens, encoder_states = model.encoder.streaming_forward(chunk, chunk_lens, encoder_states)
        greedy_search_step(model, out, out_lens, decoder_state, max_sym_per_frame)
    return decoder_state.hyps(model.decoder.context_size)
