"""Backend selection of asrtools.losses.rnnt: auto / k2 / native and $ASRTOOLS_RNNT_BACKEND."""
from __future__ import annotations

import pytest
import torch

from asrtools.errors import ConfigError
from asrtools.losses import rnnt

torch.set_num_threads(1)


def test_auto_picks_k2_exactly_when_it_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rnnt.BACKEND_ENV, raising=False)
    assert rnnt.resolve_backend("auto") == ("k2" if rnnt.k2_available() else "native")
    assert rnnt.resolve_backend("native") == "native"


def test_environment_variable_overrides_auto_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rnnt.BACKEND_ENV, "native")
    assert rnnt.resolve_backend("auto") == "native"
    if rnnt.k2_available():
        assert rnnt.resolve_backend("k2") == "k2"  # an explicit choice wins over the variable
    monkeypatch.setenv(rnnt.BACKEND_ENV, "cuda")
    with pytest.raises(ConfigError, match="ASRTOOLS_RNNT_BACKEND='cuda'"):
        rnnt.resolve_backend("auto")


@pytest.mark.skipif(rnnt.k2_available(), reason="optional: k2 is importable here (this checks the error without k2)")
def test_k2_backend_without_k2_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="k2 is not importable"):
        rnnt.resolve_backend("k2")
    monkeypatch.setenv(rnnt.BACKEND_ENV, "k2")
    with pytest.raises(ConfigError, match="k2 is not importable"):
        rnnt.rnnt_loss_simple(torch.zeros(1, 2, 3), torch.zeros(1, 4, 3), torch.ones(1, 1, dtype=torch.int64), 0)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"backend": "gpu"}, "rnnt backend 'gpu'"),
        ({"rnnt_type": "fast"}, "rnnt_type 'fast'"),
        ({"reduction": "max"}, "reduction 'max'"),
        ({"delay_penalty": -0.1}, "delay_penalty -0.1"),
    ],
)
def test_bad_options_are_config_errors(kwargs, message: str) -> None:
    lm, am, symbols = torch.zeros(1, 2, 3), torch.zeros(1, 4, 3), torch.ones(1, 1, dtype=torch.int64)
    with pytest.raises(ConfigError, match=message):
        rnnt.rnnt_loss_simple(lm, am, symbols, 0, **kwargs)


def test_native_backend_rejects_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="inconsistent shapes"):
        rnnt.rnnt_loss_simple(torch.zeros(1, 3, 5), torch.zeros(1, 4, 5), torch.ones(1, 1, dtype=torch.int64), 0,
                              backend="native")
    with pytest.raises(ValueError, match="px has shape"):
        rnnt.mutual_information_recursion(torch.zeros(1, 2, 9), torch.zeros(1, 3, 4), backend="native")
    with pytest.raises(ValueError, match="boundary rows"):
        rnnt.mutual_information_recursion(torch.zeros(1, 2, 5), torch.zeros(1, 3, 4), torch.tensor([[0, 0, 3, 4]]),
                                          backend="native")
