"""``device: auto | cpu | cuda``: which ONNX Runtime provider a model asks for, and a clear
refusal at start-up when the device asked for cannot be used."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from stampflow.classifiers.device import (
    CPU,
    CUDA,
    DEVICE_ENV,
    DeviceError,
    onnx_providers,
    requested_device,
    session_device,
    start_session,
)
from stampflow.classifiers.morphology.plugin import MorphologyClassifier

HAS_CUDA = CUDA in ort.get_available_providers()


class _Session:  # what ``session_device`` reads of an ``ort.InferenceSession``
    def __init__(self, providers: list[str]) -> None:
        self._providers = providers

    def get_providers(self) -> list[str]:
        return self._providers


def test_the_device_comes_from_the_argument_then_the_environment_then_cpu(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert requested_device() == "cpu"
    monkeypatch.setenv(DEVICE_ENV, "auto")
    assert requested_device() == "auto"
    assert requested_device("cuda") == "cuda"
    monkeypatch.setenv(DEVICE_ENV, "gpu")
    with pytest.raises(DeviceError, match=f"{DEVICE_ENV} must be one of auto, cpu, cuda"):
        requested_device()


def test_providers_follow_the_device_and_what_onnx_runtime_has():
    assert onnx_providers("cpu", [CUDA, CPU]) == [CPU]
    assert onnx_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert onnx_providers("auto", [CPU]) == [CPU]
    assert onnx_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(DeviceError, match="no CUDA provider.*onnxruntime-gpu"):
        onnx_providers("cuda", ["AzureExecutionProvider", CPU])


def test_a_cuda_session_that_fell_back_to_the_cpu_is_refused_unless_auto():
    assert session_device("cuda", _Session([CUDA, CPU])) == "cuda"
    assert session_device("auto", _Session([CPU])) == "cpu"
    with pytest.raises(DeviceError, match="fell back to the CPU"):
        session_device("cuda", _Session([CPU]))


def test_a_cuda_provider_that_fails_to_start_falls_back_only_for_auto():
    asked: list[list[str]] = []

    def make(providers: list[str]) -> _Session:
        asked.append(providers)
        if CUDA in providers:
            raise RuntimeError("CUDA driver version is insufficient")
        return _Session(providers)

    assert start_session(make, "auto", [CUDA, CPU]).get_providers() == [CPU]
    assert asked == [[CUDA, CPU], [CPU]]
    with pytest.raises(DeviceError, match="failed to start.*driver version is insufficient"):
        start_session(make, "cuda", [CUDA, CPU])


def test_the_cnn_runs_where_it_was_told_and_says_so(monkeypatch):
    monkeypatch.delenv(DEVICE_ENV, raising=False)
    assert MorphologyClassifier.load().device == "cpu"
    assert MorphologyClassifier.load(device="cpu").model.session.get_providers() == [CPU]
    # auto takes the GPU only where ONNX Runtime can use one (never in CI).
    auto = MorphologyClassifier.load(device="auto")
    assert auto.device == ("cuda" if HAS_CUDA else "cpu")
    if not HAS_CUDA:
        monkeypatch.setenv(DEVICE_ENV, "cuda")
        with pytest.raises(DeviceError, match="device cuda: this ONNX Runtime has no CUDA"):
            MorphologyClassifier.load()
