"""Modified beam search (icefall's `modified_beam_search` semantics).

At most one non-blank symbol per frame. At each frame every hypothesis of an utterance is
extended by every token (blank keeps the token sequence, a non-blank appends it); the
`beam` best (hypothesis, token) pairs of the utterance survive, and survivors with the
same token sequence are merged by adding their probabilities (log-add). The result is the
hypothesis with the highest log-probability, divided by its length when `length_norm`
(icefall's default). Joiner and decoder calls are batched over all hypotheses of all
utterances of the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch

from asrtools.decoding.greedy import initial_context, projected_decoder_out
from asrtools.models.transducer import Transducer


@dataclass
class Hypothesis:
    """One beam entry.

    Attributes:
      context: start context followed by the emitted tokens.
      log_prob: total log-probability of all alignments merged into this entry.
    """

    context: List[int]
    log_prob: float

    def tokens(self, context_size: int) -> List[int]:
        """The emitted tokens (start context removed)."""
        return self.context[context_size:]


@torch.no_grad()
def beam_search_nbest(
    model: Transducer,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: int = 4,
) -> List[List[Hypothesis]]:
    """Run modified beam search and return every utterance's final beam.

    Args:
      model: the transducer (in eval mode).
      encoder_out: (B, T, C) encoder output.
      encoder_out_lens: (B,) int64 valid frames.
      beam: hypotheses kept per utterance (>= 1).

    Returns:
      For each utterance, its surviving hypotheses sorted by log_prob (best first).
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    device = encoder_out.device
    projected = model.joiner.encoder_proj(encoder_out)
    beams: List[List[Hypothesis]] = [[Hypothesis(initial_context(model), 0.0)] for _ in range(encoder_out.size(0))]
    for t in range(encoder_out.size(1)):
        active = [b for b in range(len(beams)) if int(encoder_out_lens[b]) > t]
        if not active:
            break
        flat = [(b, hyp) for b in active for hyp in beams[b]]
        decoder_out = projected_decoder_out(model, [hyp.context for _, hyp in flat], device)
        frames = projected[[b for b, _ in flat], t]
        log_probs = model.joiner(frames, decoder_out, project_input=False).log_softmax(dim=-1)
        log_probs += torch.tensor([hyp.log_prob for _, hyp in flat], device=device).unsqueeze(1)
        start = 0
        for b in active:
            count = len(beams[b])
            beams[b] = _next_beam(beams[b], log_probs[start : start + count], beam, model.blank_id)
            start += count
    return [sorted(hyps, key=lambda h: h.log_prob, reverse=True) for hyps in beams]


def _next_beam(hyps: List[Hypothesis], scores: torch.Tensor, beam: int, blank_id: int) -> List[Hypothesis]:
    """The `beam` best extensions of `hyps` given (N, V) extension scores, merged."""
    vocab_size = scores.size(1)
    top_scores, top_index = scores.reshape(-1).topk(min(beam, scores.numel()))
    merged: Dict[Tuple[int, ...], Hypothesis] = {}
    for score, index in zip(top_scores.tolist(), top_index.tolist()):
        source, token = divmod(index, vocab_size)
        context = hyps[source].context if token == blank_id else hyps[source].context + [token]
        key = tuple(context)
        if key in merged:
            merged[key].log_prob = _log_add(merged[key].log_prob, score)
        else:
            merged[key] = Hypothesis(context, score)
    return list(merged.values())


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


def modified_beam_search(
    model: Transducer,
    encoder_out: torch.Tensor,
    encoder_out_lens: torch.Tensor,
    beam: int = 4,
    length_norm: bool = True,
) -> List[List[int]]:
    """Modified beam search; the best hypothesis of each utterance.

    Args:
      model: the transducer (in eval mode).
      encoder_out: (B, T, C) encoder output.
      encoder_out_lens: (B,) int64 valid frames.
      beam: hypotheses kept per utterance.
      length_norm: rank final hypotheses by log_prob / length (icefall's choice) instead of
        log_prob.

    Returns:
      B token-id lists (no blanks).
    """
    size = model.decoder.context_size
    results = []
    for hyps in beam_search_nbest(model, encoder_out, encoder_out_lens, beam):
        key = (lambda h: h.log_prob / len(h.context)) if length_norm else (lambda h: h.log_prob)
        results.append(max(hyps, key=key).tokens(size))
    return results
