"""Batched greedy search for transducers, usable whole-utterance or chunk by chunk.

`GreedyState` carries each stream's emitted tokens and its current (projected) decoder
output, so `greedy_search_step` can be called on consecutive chunks of encoder output
(streaming) or once on the whole output (offline); both run the same per-frame code, which
is why streaming decoding of a causal encoder reproduces offline decoding exactly.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import List

import torch

from asrtools.models.transducer import Transducer


@dataclass
class GreedyState:
    """Decoding state of B streams.

    Attributes:
      contexts: per stream, `[-1] * (context_size - 1) + [blank]` followed by the emitted
        tokens (the decoder sees the last `context_size` of them).
      decoder_out: (B, J) decoder output for the current context, already passed through
        `joiner.decoder_proj`.
      frames: per stream, the encoder frame (counted from the stream's start) on which
        each emitted token was emitted.
      frames_done: encoder frames consumed so far (the offset of the next chunk).
    """

    contexts: List[List[int]]
    decoder_out: torch.Tensor
    frames: List[List[int]] = dataclasses.field(default_factory=list)
    frames_done: int = 0

    def hyps(self, context_size: int) -> List[List[int]]:
        """The emitted tokens of each stream (the start context removed)."""
        return [ctx[context_size:] for ctx in self.contexts]


def initial_context(model: Transducer) -> List[int]:
    """Start context: "no token" (-1, zero embedding) padding, then blank."""
    return [-1] * (model.decoder.context_size - 1) + [model.blank_id]


def projected_decoder_out(model: Transducer, contexts: List[List[int]], device: torch.device) -> torch.Tensor:
    """(N, J) `joiner.decoder_proj(decoder(last context_size tokens))` of N contexts."""
    size = model.decoder.context_size
    ys = torch.tensor([ctx[-size:] for ctx in contexts], dtype=torch.int64, device=device)
    return model.joiner.decoder_proj(model.decoder(ys, need_pad=False)).squeeze(1)


@torch.no_grad()
def init_greedy_state(model: Transducer, batch_size: int, device: torch.device) -> GreedyState:
    """The state before the first frame of `batch_size` streams."""
    contexts = [initial_context(model) for _ in range(batch_size)]
    return GreedyState(contexts, projected_decoder_out(model, contexts, device), [[] for _ in range(batch_size)])


@torch.no_grad()
def greedy_search_step(
    model: Transducer,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    state: GreedyState,
    max_sym_per_frame: int = 1,
) -> GreedyState:
    """Advance greedy search over the next encoder frames of each stream (in place).

    Args:
      model: the transducer (in eval mode).
      encoder_out: (B, T, C) encoder output frames.
      encoder_out_lens: (B,) int64 valid frames of each stream in `encoder_out`.
      state: from `init_greedy_state` or the previous call; updated and returned.
      max_sym_per_frame: at most this many non-blank symbols are emitted per frame.

    Returns:
      `state`.
    """
    if max_sym_per_frame < 1:
        raise ValueError(f"max_sym_per_frame must be >= 1, got {max_sym_per_frame}")
    projected = model.joiner.encoder_proj(encoder_out)
    for t in range(encoder_out.size(1)):
        may_emit = encoder_out_lens > t
        for _ in range(max_sym_per_frame):
            if not bool(may_emit.any()):
                break
            logits = model.joiner(projected[:, t], state.decoder_out, project_input=False)
            tokens = logits.argmax(dim=-1)
            emitted = may_emit & (tokens != model.blank_id)
            index = emitted.nonzero(as_tuple=True)[0]
            if index.numel() == 0:
                break
            for i, token in zip(index.tolist(), tokens[index].tolist()):
                state.contexts[i].append(token)
                state.frames[i].append(state.frames_done + t)
            state.decoder_out[index] = projected_decoder_out(
                model, [state.contexts[i] for i in index.tolist()], encoder_out.device
            )
            may_emit = emitted
    state.frames_done += encoder_out.size(1)
    return state


def greedy_search(
    model: Transducer,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    max_sym_per_frame: int = 1,
) -> List[List[int]]:
    """Batched greedy search over whole utterances.

    Args:
      model: the transducer (in eval mode).
      encoder_out: (B, T, C) encoder output.
      encoder_out_lens: (B,) int64 valid frames.
      max_sym_per_frame: at most this many non-blank symbols per frame.

    Returns:
      B token-id lists (no blanks).
    """
    state = init_greedy_state(model, encoder_out.size(0), encoder_out.device)
    greedy_search_step(model, encoder_out, encoder_out_lens, state, max_sym_per_frame)
    return state.hyps(model.decoder.context_size)
