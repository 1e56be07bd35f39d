"""Cohort-aware input for any encoder: a learned cohort embedding joined to the features.

`CohortInputEncoder` (registered as `cohort_input`) wraps any registered encoder. Each
utterance carries a cohort id (0 = no cohort; 1..K = the labels in `cohorts`; K + 1 = the
explicit cohort `(unknown)` of a speaker missing from the cohort map); its low-dimensional
embedding `e` (`dim`) is joined to every input frame before the wrapped encoder sees it:

- `combine: add`     x' = x + W e            (W: (F, dim), zero-initialised)
- `combine: concat`  x' = A [x; e] + b       (A: (F, F + dim) initialised to [I | 0], b = 0)

so a fresh wrapper computes exactly what its inner encoder computes: fine-tuning starts from
the baseline. The embedding table itself starts random (so the zero projection receives a
gradient), row 0 stays zero (`padding_idx`), and the `(unknown)` row starts at zero (an
unknown speaker gets the baseline's input until training speakers missing from the map
train it). A speaker missing from the map is never silently given another cohort's input:
it gets `(unknown)`, and `cohort_coverage` counts such speakers and utterances for the
training log and the mitigation page. The cohort is constant over an utterance,
so streaming adds the same vector to every chunk and stays equal to offline decoding
whenever the inner encoder is causal.

Cohort ids are per batch and set before the forward pass (`set_cohorts`, or
`condition_on_speakers` with a speaker -> label map attached by `attach_cohort_map`), like
the compute counters of `Encoder.reset_compute`; none set means cohort 0 (the baseline).

Model config:

    model:
      encoder: cohort_input
      encoder_params: {encoder: lstm, encoder_params: {...}, cohorts: [rank1, rank2], dim: 8, combine: add}

Weights of the plain inner encoder (`encoder.<name>`) load into the wrapper
(`encoder.inner.<name>`), so `--init-from` a baseline checkpoint works.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from asrtools.errors import ConfigError, DataError
from asrtools.models.encoder import Encoder, State, build_encoder, register_encoder

NO_COHORT = 0
UNKNOWN_COHORT = "(unknown)"  # the label of speakers missing from the cohort map
COMBINES = ("add", "concat")
_OWN = ("cohort_embedding.", "cohort_proj.", "inner.")


@register_encoder("cohort_input")
class CohortInputEncoder(Encoder):
    """Any encoder with a cohort embedding joined to its input (see the module docstring).

    Args:
      input_dim: F, input feature size.
      encoder: the wrapped encoder's registered name.
      encoder_params: its keyword arguments.
      cohorts: the K cohort labels (ids 1..K in this order).
      dim: D, size of the cohort embedding.
      combine: "add" or "concat" (see the module docstring).
    """

    def __init__(self, input_dim: int, encoder: str, cohorts: Sequence[str], encoder_params: Optional[Dict[str, Any]] = None,
                 dim: int = 8, combine: str = "add") -> None:
        super().__init__()
        if encoder == "cohort_input":
            raise ConfigError("encoder cohort_input cannot wrap itself")
        if combine not in COMBINES:
            raise ConfigError(f"cohort_input: combine {combine!r} is unknown (known: {', '.join(COMBINES)})")
        if dim < 1 or not cohorts or len(set(cohorts)) != len(cohorts):
            raise ConfigError("cohort_input: dim must be >= 1 and cohorts a non-empty list of distinct labels")
        if UNKNOWN_COHORT in cohorts:
            raise ConfigError(f"cohort_input: {UNKNOWN_COHORT!r} is reserved for speakers missing from the cohort map")
        self.inner = build_encoder(encoder, input_dim=input_dim, **(encoder_params or {}))
        self.cohorts: List[str] = [str(c) for c in cohorts]
        self.combine = combine
        self.cohort_embedding = nn.Embedding(len(self.cohorts) + 2, dim, padding_idx=NO_COHORT)
        with torch.no_grad():
            self.cohort_embedding.weight[self.unknown_id].zero_()
        if combine == "add":
            self.cohort_proj = nn.Linear(dim, input_dim, bias=False)
            nn.init.zeros_(self.cohort_proj.weight)
        else:
            self.cohort_proj = nn.Linear(input_dim + dim, input_dim)
            with torch.no_grad():
                self.cohort_proj.weight.zero_()
                self.cohort_proj.weight[:, :input_dim] = torch.eye(input_dim)
                self.cohort_proj.bias.zero_()
        self.output_dim = self.inner.output_dim
        self.subsampling_factor = self.inner.subsampling_factor
        self.chunk_frames_multiple = self.inner.chunk_frames_multiple
        self._cohort_ids: Optional[torch.Tensor] = None
        self.speaker_cohorts: Optional[Dict[str, str]] = None  # attached at run time, not saved
        self._register_load_state_dict_pre_hook(_nest_plain_encoder_keys, with_module=True)

    # ------------------------------------------------------------------ conditioning

    @property
    def unknown_id(self) -> int:
        """The id of the explicit `(unknown)` cohort (K + 1)."""
        return len(self.cohorts) + 1

    def set_cohorts(self, ids: Optional[torch.Tensor]) -> None:
        """Cohort ids `(B,)` int64 of the next batch (0 = none); None = cohort 0 for all."""
        self._cohort_ids = None if ids is None else ids.to(torch.int64)

    def cohort_ids_of(self, speakers: Sequence[str]) -> torch.Tensor:
        """`(B,)` int64 ids of the speakers' cohorts by the attached map (`unknown_id` if not in it)."""
        if self.speaker_cohorts is None:
            raise ConfigError("this model has a cohort input: give it the speakers' cohorts (decode --cohort-map)")
        index = {label: k + 1 for k, label in enumerate(self.cohorts)}
        ids = []
        for speaker in speakers:
            label = self.speaker_cohorts.get(speaker)
            if label is not None and label not in index:
                raise DataError(f"speaker {speaker}: cohort {label!r} is not one the model was trained with "
                                f"({', '.join(self.cohorts)})")
            ids.append(self.unknown_id if label is None else index[label])
        return torch.tensor(ids, dtype=torch.int64)

    def _join(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) features with each utterance's cohort embedding joined."""
        batch = x.size(0)
        ids = self._cohort_ids
        if ids is None:
            ids = torch.zeros(batch, dtype=torch.int64)
        if ids.numel() != batch:
            raise ValueError(f"cohort ids were set for {ids.numel()} utterances, the batch has {batch}")
        emb = self.cohort_embedding(ids.to(x.device)).to(x.dtype)  # (B, D)
        if self.combine == "add":
            return x + self.cohort_proj(emb)[:, None, :]
        return self.cohort_proj(torch.cat([x, emb[:, None, :].expand(-1, x.size(1), -1)], dim=-1))

    # --------------------------------------------------------------- the interface

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(B, T, F) features, (B,) lengths -> the inner encoder's (B, T', C) output and (B,) lengths."""
        return self.inner(self._join(x), x_lens)

    def init_states(self, batch_size: int, device: torch.device) -> State:
        return self.inner.init_states(batch_size, device)

    def streaming_forward(self, chunk: torch.Tensor, chunk_lens: torch.Tensor,
                          states: State) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """The inner encoder's streaming step on the (B, Tc, F) chunk with the cohorts joined."""
        return self.inner.streaming_forward(self._join(chunk), chunk_lens, states)

    def __getattr__(self, name: str) -> Any:
        # `output_lengths` exists only where the inner encoder has it (hasattr stays truthful).
        if name == "output_lengths":
            return getattr(self._modules["inner"], name)
        return super().__getattr__(name)

    @property
    def is_causal(self) -> bool:
        return self.inner.is_causal

    def set_training_progress(self, step: int, epoch: int) -> None:
        self.inner.set_training_progress(step, epoch)

    def auxiliary_losses(self) -> Dict[str, torch.Tensor]:
        return self.inner.auxiliary_losses()

    def training_statistics(self) -> Dict[str, float]:
        return self.inner.training_statistics()

    def reset_compute(self, batch_size: int) -> None:
        self.inner.reset_compute(batch_size)

    def stop_counting(self) -> None:
        self.inner.stop_counting()

    def compute_counts(self) -> Optional[List[Dict[str, Any]]]:
        return self.inner.compute_counts()


def _nest_plain_encoder_keys(module: "CohortInputEncoder", state_dict: Dict[str, Any], prefix: str,
                             *args: Any) -> None:
    """Load a plain encoder's weights (`<prefix><name>`) as the inner encoder's (`<prefix>inner.<name>`);
    refuse, in one line, a cohort table without the `(unknown)` row (written before it existed)."""
    for key in [k for k in state_dict if k.startswith(prefix) and not k[len(prefix):].startswith(_OWN)]:
        state_dict[prefix + "inner." + key[len(prefix):]] = state_dict.pop(key)
    table = state_dict.get(prefix + "cohort_embedding.weight")
    if table is not None and int(table.shape[0]) == len(module.cohorts) + 1:
        raise DataError(f"the checkpoint's cohort embedding has no row for {UNKNOWN_COHORT!r} (speakers missing "
                        "from the cohort map): it was trained when such speakers silently got cohort 0; "
                        "train the cohort-input model again")


def has_cohort_input(model: nn.Module) -> bool:
    """Whether `model`'s encoder is a `CohortInputEncoder`."""
    return isinstance(getattr(model, "encoder", None), CohortInputEncoder)


def attach_cohort_map(model: nn.Module, speaker_cohorts: Mapping[str, str]) -> None:
    """Give a cohort-input model its speaker -> cohort label map (used by `condition_on_speakers`)."""
    if not has_cohort_input(model):
        raise ConfigError("a cohort map was given, but the model has no cohort input (encoder cohort_input)")
    model.encoder.speaker_cohorts = {str(k): str(v) for k, v in speaker_cohorts.items()}


def condition_on_speakers(model: nn.Module, speakers: Sequence[str]) -> None:
    """Set the cohort ids of the next batch from its speakers; does nothing for other models."""
    if has_cohort_input(model):
        model.encoder.set_cohorts(model.encoder.cohort_ids_of(speakers))


def cohort_input_config(model_config: Dict[str, Any], cohorts: Sequence[str], dim: int,
                        combine: str) -> Dict[str, Any]:
    """A plain model config (`model_config_to_dict`) with its encoder wrapped by `cohort_input`."""
    if model_config.get("encoder") == "cohort_input":
        raise ConfigError("the model already has a cohort input")
    params = {"encoder": model_config["encoder"], "encoder_params": dict(model_config.get("encoder_params", {})),
              "cohorts": list(cohorts), "dim": int(dim), "combine": combine}
    return {**model_config, "encoder": "cohort_input", "encoder_params": params}


@dataclasses.dataclass(frozen=True)
class CohortCoverage:
    """How many of a split's speakers and utterances the cohort map misses (cohort `(unknown)`).

    Attributes:
      speakers, utterances: the split's distinct speakers and its utterances.
      unknown_speakers: the speakers missing from the map, sorted.
      unknown_utterances: their utterances.
    """

    speakers: int
    utterances: int
    unknown_speakers: List[str]
    unknown_utterances: int

    def to_dict(self) -> Dict[str, Any]:
        return {"speakers": self.speakers, "utterances": self.utterances,
                "unknown_speakers": len(self.unknown_speakers), "unknown_utterances": self.unknown_utterances,
                "unknown_examples": self.unknown_speakers[:5], "unknown_label": UNKNOWN_COHORT}

    def describe(self, what: str, source: str) -> str:
        """One log line: `train: 3 of 40 speakers (120 of 4000 utterances) are not in FILE: ...`."""
        examples = ", ".join(self.unknown_speakers[:3]) + (" ..." if len(self.unknown_speakers) > 3 else "")
        line = (f"cohort input, {what}: {len(self.unknown_speakers)} of {self.speakers} speakers "
                f"({self.unknown_utterances} of {self.utterances} utterances) are not in {source}")
        return line + (f" and get the explicit cohort {UNKNOWN_COHORT!r} (e.g. {examples})" if examples else "")


def cohort_coverage(speaker_cohorts: Mapping[str, str], utterance_speakers: Sequence[str]) -> CohortCoverage:
    """Count the speakers (and their utterances) of `utterance_speakers` missing from the map.

    Args:
      speaker_cohorts: speaker -> cohort label.
      utterance_speakers: the speaker of every utterance of a split (repeats expected).
    """
    missing = [s for s in utterance_speakers if s not in speaker_cohorts]
    return CohortCoverage(len(set(utterance_speakers)), len(utterance_speakers), sorted(set(missing)), len(missing))
