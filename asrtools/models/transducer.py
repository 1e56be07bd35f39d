"""The transducer: any registered encoder, a stateless prediction network and a joiner.

Follows icefall's pruned-transducer recipe (k2 pruned RNN-T): the prediction network is
"stateless" (an embedding of the last `context_size` tokens mixed by a causal 1-D conv),
the joiner adds projected encoder and decoder frames, applies tanh and an output linear
layer, and two extra linear layers (`simple_am_proj`, `simple_lm_proj`) give the trivial
joiner of the smoothed loss whose gradients choose the pruning ranges. `Transducer.forward`
returns both losses; `loss_scales` gives icefall's warm-up schedule for mixing them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from asrtools.models.encoder import Encoder


class StatelessDecoder(nn.Module):
    """Prediction network that sees only the last `context_size` tokens.

    Token id -1 stands for "before the start of the utterance" and embeds to zeros, which is
    also what the left padding of the conv gives during training, so decoding from the
    context `[-1] * (context_size - 1) + [blank_id]` matches training exactly.

    Args:
      vocab_size: V, number of output ids (blank included).
      decoder_dim: D, embedding and output size.
      blank_id: the blank id, also the start-of-sequence token.
      context_size: number of previous tokens seen (1 = bigram-free, embedding only).
    """

    def __init__(self, vocab_size: int, decoder_dim: int, blank_id: int = 0, context_size: int = 2) -> None:
        super().__init__()
        if context_size < 1:
            raise ValueError(f"context_size must be >= 1, got {context_size}")
        self.vocab_size = vocab_size
        self.decoder_dim = decoder_dim
        self.blank_id = blank_id
        self.context_size = context_size
        self.embedding = nn.Embedding(vocab_size, decoder_dim)
        if context_size > 1:
            # Grouped like icefall (groups = D/4) to keep the context mixer small.
            groups = max(1, decoder_dim // 4) if decoder_dim % 4 == 0 else 1
            self.conv = nn.Conv1d(decoder_dim, decoder_dim, kernel_size=context_size, groups=groups, bias=False)

    def forward(self, y: torch.Tensor, need_pad: bool = True) -> torch.Tensor:
        """Decoder output for every position of `y`.

        Args:
          y: (B, U) int64 token ids; -1 means "no token" (zero embedding).
          need_pad: True in training (left-pad so output u sees y[u-context+1 .. u]);
            False in decoding, where `y` holds exactly `context_size` tokens (U = context).

        Returns:
          (B, U, D) decoder output (U = 1 when `need_pad` is False).
        """
        y = y.to(torch.int64)
        emb = self.embedding(y.clamp(min=0)) * (y >= 0).unsqueeze(-1).to(self.embedding.weight.dtype)
        if self.context_size > 1:
            emb = emb.permute(0, 2, 1)
            if need_pad:
                emb = F.pad(emb, pad=(self.context_size - 1, 0))
            elif emb.size(-1) != self.context_size:
                raise ValueError(f"expected {self.context_size} context tokens, got {emb.size(-1)}")
            emb = self.conv(emb).permute(0, 2, 1)
        return F.relu(emb)


class Joiner(nn.Module):
    """Joint network: `output_linear(tanh(encoder_proj(enc) + decoder_proj(dec)))`.

    Args:
      encoder_dim: C, encoder output size.
      decoder_dim: D, decoder output size.
      joiner_dim: J, size of the joint hidden layer.
      vocab_size: V, number of output ids.
    """

    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, joiner_dim)
        self.decoder_proj = nn.Linear(decoder_dim, joiner_dim)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def forward(self, encoder_out: torch.Tensor, decoder_out: torch.Tensor, project_input: bool = True) -> torch.Tensor:
        """Joint logits.

        Args:
          encoder_out: (..., C) encoder frames, or (..., J) if already projected.
          decoder_out: (..., D) decoder frames, or (..., J) if already projected; must
            broadcast against `encoder_out`.
          project_input: False when both inputs went through `encoder_proj` /
            `decoder_proj` already (the pruned path projects before gathering).

        Returns:
          (..., V) unnormalised logits.
        """
        if project_input:
            hidden = self.encoder_proj(encoder_out) + self.decoder_proj(decoder_out)
        else:
            hidden = encoder_out + decoder_out
        return self.output_linear(torch.tanh(hidden))


@dataclass
class TransducerLosses:
    """Summed (over the batch) losses of one forward pass.

    Attributes:
      simple: the smoothed trivial-joiner loss (scalar).
      pruned: the pruned full-joiner loss (scalar).
      num_frames: total valid encoder frames of the batch (for per-frame normalisation).
      encoder_out_lens: (B,) int64 encoder output lengths.
      aux: the encoder's auxiliary losses (already weighted scalars, by name; training only).
    """

    simple: torch.Tensor
    pruned: torch.Tensor
    num_frames: int
    encoder_out_lens: torch.Tensor
    aux: Dict[str, torch.Tensor] = field(default_factory=dict)


def loss_scales(step: int, warm_steps: int, simple_loss_scale: float) -> Tuple[float, float]:
    """icefall's warm-up of the two loss terms.

    The pruned loss's windows are meaningless until the simple loss has learnt something,
    so during warm-up the simple scale falls linearly from 1 to `simple_loss_scale` and the
    pruned scale rises linearly from 0 to 1.

    Args:
      step: the global training step (0-based, counting optimizer updates).
      warm_steps: length of the warm-up; 0 disables it.
      simple_loss_scale: the simple loss's weight after warm-up.

    Returns:
      (simple_scale, pruned_scale).
    """
    if warm_steps <= 0 or step >= warm_steps:
        return simple_loss_scale, 1.0
    frac = step / warm_steps
    return 1.0 - frac * (1.0 - simple_loss_scale), frac


class Transducer(nn.Module):
    """Encoder + stateless decoder + joiner, trained with the pruned RNN-T loss.

    Args:
      encoder: any `asrtools.models.encoder.Encoder`.
      decoder: the prediction network.
      joiner: the joint network.
      vocab_size: V.
    """

    def __init__(self, encoder: Encoder, decoder: StatelessDecoder, joiner: Joiner, vocab_size: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.joiner = joiner
        self.vocab_size = vocab_size
        self.blank_id = decoder.blank_id
        self.simple_am_proj = nn.Linear(encoder.output_dim, vocab_size)
        self.simple_lm_proj = nn.Linear(decoder.decoder_dim, vocab_size)

    def forward(
        self,
        x: torch.Tensor,
        x_lens: torch.Tensor,
        y: torch.Tensor,
        y_lens: torch.Tensor,
        prune_range: int = 5,
        am_scale: float = 0.0,
        lm_scale: float = 0.25,
        rnnt_type: str = "regular",
        delay_penalty: float = 0.0,
        backend: str = "auto",
    ) -> TransducerLosses:
        """Simple and pruned RNN-T losses of a batch (summed over utterances).

        Args:
          x: (B, T, F) padded input features.
          x_lens: (B,) int64 valid input frames.
          y: (B, S) int64 token ids padded with anything (masked by `y_lens`); no blanks.
          y_lens: (B,) int64 number of tokens of each utterance.
          prune_range: s_range, symbols kept per frame by pruning.
          am_scale: smoothed loss's AM-only interpolation weight (k2's am_only_scale).
          lm_scale: smoothed loss's LM-only interpolation weight (k2's lm_only_scale).
          rnnt_type: "regular", "modified" or "constrained".
          delay_penalty: k2's delay penalty (rewards early emission), 0 disables it.
          backend: loss implementation, passed to `asrtools.losses.rnnt`.

        Returns:
          The losses; `num_frames` counts valid encoder frames.
        """
        from asrtools.losses import rnnt

        encoder_out, encoder_out_lens = self.encoder(x, x_lens)
        aux = self.encoder.auxiliary_losses() if self.training else {}
        y = y.to(torch.int64)
        y_lens = y_lens.to(torch.int64)
        max_len = int(y_lens.max()) if y.numel() else 0
        y = y[:, :max_len]
        symbols = y.masked_fill(_length_mask(y_lens, max_len), self.blank_id)
        sos_y = F.pad(symbols, (1, 0), value=self.blank_id)
        decoder_out = self.decoder(sos_y)

        boundary = torch.zeros((x.size(0), 4), dtype=torch.int64, device=x.device)
        boundary[:, 2] = y_lens
        boundary[:, 3] = encoder_out_lens

        lm = self.simple_lm_proj(decoder_out)
        am = self.simple_am_proj(encoder_out)
        # The losses run in float32 also under mixed precision (autocast off): their
        # log-sum-exps and recursions over T x U lose too much in bfloat16.
        float32 = torch.autocast(x.device.type, enabled=False)
        with float32:
            simple_loss, (px_grad, py_grad) = rnnt.rnnt_loss_smoothed(
                lm=lm.float(),
                am=am.float(),
                symbols=symbols,
                termination_symbol=self.blank_id,
                lm_only_scale=lm_scale,
                am_only_scale=am_scale,
                boundary=boundary,
                rnnt_type=rnnt_type,
                delay_penalty=delay_penalty,
                reduction="sum",
                return_grad=True,
                backend=backend,
            )
        if not bool(torch.isfinite(simple_loss)):
            # The occupation grads are then non-finite too: pruning ranges built from them are
            # meaningless (possibly out of range), so report the pruned loss as NaN unevaluated.
            return TransducerLosses(simple_loss, torch.full_like(simple_loss, float("nan")),
                                    int(encoder_out_lens.sum()), encoder_out_lens, aux)
        with float32:
            ranges = rnnt.get_rnnt_prune_ranges(
                px_grad=px_grad, py_grad=py_grad, boundary=boundary, s_range=prune_range, backend=backend
            )
        am_pruned, lm_pruned = rnnt.do_rnnt_pruning(
            am=self.joiner.encoder_proj(encoder_out),
            lm=self.joiner.decoder_proj(decoder_out),
            ranges=ranges,
            backend=backend,
        )
        logits = self.joiner(am_pruned, lm_pruned, project_input=False)
        with float32:
            pruned_loss = rnnt.rnnt_loss_pruned(
                logits=logits.float(),
                symbols=symbols,
                ranges=ranges,
                termination_symbol=self.blank_id,
                boundary=boundary,
                rnnt_type=rnnt_type,
                delay_penalty=delay_penalty,
                reduction="sum",
                backend=backend,
            )
        return TransducerLosses(
            simple=simple_loss,
            pruned=pruned_loss,
            num_frames=int(encoder_out_lens.sum()),
            encoder_out_lens=encoder_out_lens,
            aux=aux,
        )


def _length_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool, True at padded positions."""
    return torch.arange(max_len, device=lens.device).unsqueeze(0) >= lens.unsqueeze(1)
