"""Shared checks of chunk-wise streaming: random chunk sizes, running an encoder chunk by
chunk with its states, and "streaming output equals whole-utterance output"."""
from __future__ import annotations

from typing import List, Tuple

import torch


def random_chunk_sizes(total: int, generator: torch.Generator, multiple: int = 1) -> List[int]:
    """Random chunk lengths (multiples of `multiple`, starting with an empty one) summing to `total`."""
    sizes, left = [0], total
    while left > 0:
        high = 4 if multiple > 1 else 9
        size = min(multiple * int(torch.randint(0, high, (1,), generator=generator)), left)
        sizes.append(size)
        left -= size
    return sizes


def stream_encoder(
    encoder, x: torch.Tensor, lens: torch.Tensor, sizes: List[int], check_widths: bool = False
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Run `encoder.streaming_forward` over consecutive chunks of `x`.

    Args:
      encoder: an `asrtools.models.encoder.Encoder`.
      x: (B, T, F) padded features; lens: (B,) int64 valid frames.
      sizes: chunk lengths in frames, summing to T (zeros allowed).
      check_widths: assert that a chunk of a multiple of the subsampling factor gives
        exactly `size // factor` output frames.

    Returns:
      (B, T', C) concatenated outputs and (B,) int64 summed output lengths.
    """
    states = encoder.init_states(x.size(0), torch.device("cpu"))
    outs, out_lens, start = [], torch.zeros_like(lens), 0
    for size in sizes:
        chunk = x[:, start : start + size]
        chunk_lens = (lens - start).clamp(min=0, max=chunk.size(1))
        out, n, states = encoder.streaming_forward(chunk, chunk_lens, states)
        if check_widths and chunk.size(1) % encoder.subsampling_factor == 0:
            assert out.size(1) == chunk.size(1) // encoder.subsampling_factor
        outs.append(out)
        out_lens += n
        start += size
    return torch.cat(outs, dim=1), out_lens


def assert_streaming_equals_offline(
    encoder, x: torch.Tensor, lens: torch.Tensor, sizes: List[int], atol: float = 1e-5, check_widths: bool = False
) -> None:
    """Chunk-wise output (see `stream_encoder`) equals `encoder(x, lens)` on every valid frame."""
    full, full_lens = encoder(x, lens)
    streamed, streamed_lens = stream_encoder(encoder, x, lens, sizes, check_widths)
    assert streamed_lens.tolist() == full_lens.tolist()
    assert streamed.shape == full.shape
    for b, n in enumerate(full_lens.tolist()):
        torch.testing.assert_close(streamed[b, :n], full[b, :n], rtol=1e-5, atol=atol)
