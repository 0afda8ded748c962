"""The morphology CNN as a torch module: what training fits and what is exported to ONNX.

Residual blocks with squeeze-and-excitation channel attention (Hu et al. 2018): the
attention lets the network weigh bands and feature maps per image, which matters because the
dust's colour across F200W..F444W changes with its temperature. Four input channels (the
NIRCam bands on a common 64x64 grid at 0.063"/px), five logits.

Serving never imports this module (nor torch): it runs the same network exported to the
bundle's ``model.onnx`` (``stampflow.training.morphology.export``) with onnxruntime.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stampflow.classifiers.morphology.netconfig import N_BANDS, NetConfig

__all__ = [
    "N_BANDS",
    "MorphologyNet",
    "NetConfig",
    "TorchNetwork",
    "arrays_to_model",
    "state_to_arrays",
]


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ResidualSEBlock(nn.Module):
    """conv-bn-relu-conv-bn, SE attention, plus a (projected when needed) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            SqueezeExcite(out_ch, reduction),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class MorphologyNet(nn.Module):
    def __init__(self, config: NetConfig = NetConfig()) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(N_BANDS, config.stem, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(config.stem),
            nn.ReLU(inplace=True),
        )
        blocks, width = [], config.stem
        for out in config.stages:
            blocks.append(ResidualSEBlock(width, out, 2, config.se_reduction))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, config.n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate representation (pooled, before the classifier head)."""
        return self.pool(self.blocks(self.stem(x))).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def state_to_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """A state dict as plain numpy arrays (for safetensors; no pickle)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def arrays_to_model(arrays: dict[str, np.ndarray], config: NetConfig) -> MorphologyNet:
    """Rebuild the network from plain arrays; strict, so a mismatched bundle fails loudly."""
    model = MorphologyNet(config)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
    return model.eval()


class TorchNetwork:
    """A torch ``MorphologyNet`` behind the plugin's ``Network`` interface (training and
    tests): (n, 4, 64, 64) preprocessed float32 -> (penultimate features, logits), numpy."""

    def __init__(self, net: MorphologyNet) -> None:
        self.net = net.eval()

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.net.eval()
        with torch.no_grad():
            features = self.net.features(torch.from_numpy(np.ascontiguousarray(x, np.float32)))
            return features.numpy(), self.net.head(features).numpy()
