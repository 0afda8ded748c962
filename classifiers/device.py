"""Where a model runs: ``device: auto | cpu | cuda``, resolved once when it loads.

- ``cpu`` (the default): ONNX Runtime's CPU provider.
- ``cuda``: ONNX Runtime's CUDA provider, or a ``DeviceError`` at start-up saying why not
  (this ONNX Runtime has no CUDA provider: ``pip install onnxruntime-gpu``; or it has one
  but no GPU answered and the session fell back to the CPU).
- ``auto``: CUDA when the provider is there and a session on it starts, else the CPU.

The daemon hands its ``device`` to the plugins through ``STAMPFLOW_DEVICE`` (as it hands
threads through ``STAMPFLOW_MORPHOLOGY_THREADS``); each loaded model reports where it runs in
``stampflow_model_info{device=...}``. The blend GP is numpy on the CPU whatever the setting.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

S = TypeVar("S")

DEVICES = ("auto", "cpu", "cuda")
DEVICE_ENV = "STAMPFLOW_DEVICE"
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class DeviceError(ValueError):
    """The configured device cannot be used here."""


def requested_device(device: str | None = None) -> str:
    """``device``, else $STAMPFLOW_DEVICE, else ``cpu``; one of ``DEVICES``."""
    where = "device"
    if device is None:
        where, device = DEVICE_ENV, os.environ.get(DEVICE_ENV, "").strip() or "cpu"
    if device not in DEVICES:
        raise DeviceError(f"{where} must be one of {', '.join(DEVICES)}, got {device!r}")
    return device


def onnx_providers(device: str, available: list[str]) -> list[str]:
    """The providers to ask ONNX Runtime for, given those it ``available``-ly has."""
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise DeviceError(
            f"device cuda: this ONNX Runtime has no CUDA provider (it has "
            f"{', '.join(available)}); install onnxruntime-gpu, or set device: cpu"
        )
    return [CPU]


def session_device(device: str, session: Any) -> str:
    """Where a started session runs (``cuda`` or ``cpu``); ``device: cuda`` that fell back to
    the CPU (no GPU or driver answered) is a ``DeviceError``."""
    ran = "cuda" if session.get_providers()[0] == CUDA else "cpu"
    if device == "cuda" and ran != "cuda":
        raise DeviceError(
            "device cuda: ONNX Runtime has the CUDA provider but the session fell back to the "
            "CPU (no usable GPU or CUDA driver); set device: cpu or auto"
        )
    return ran


def start_session(make: Callable[[list[str]], S], device: str, available: list[str]) -> S:
    """``make(providers)`` for ``device``; with ``auto``, a CUDA start that fails is retried
    on the CPU, with ``cuda`` it is a ``DeviceError`` naming why."""
    providers = onnx_providers(device, available)
    try:
        return make(providers)
    except Exception as exc:
        if providers == [CPU]:
            raise
        if device == "cuda":
            why = " ".join(str(exc).split())[:300]
            raise DeviceError(f"device cuda: the CUDA provider failed to start ({why})") from None
        return make([CPU])
