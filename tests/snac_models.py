"""Tiny random SNAC models and fake checkpoints, so tests exercise the real loading and decoding code.

The tiny shape keeps the 24 kHz model's strides (512 samples per latent step,
vq strides 4/2/1, 4096-entry codebooks): frames, window arithmetic and
receptive field are the real ones; only the channel counts are small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from realtime.engines.orpheus.codes import CODEBOOK_SIZE, FRAME_TOKENS
from realtime.engines.orpheus.snac_model import SNAC_24KHZ_CONFIG

TINY_CONFIG: dict[str, Any] = {**SNAC_24KHZ_CONFIG, "encoder_dim": 4, "decoder_dim": 64}
"""The real 24 kHz layout with few channels."""


def tiny_snac(seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A freshly initialised SNAC (weight norm still in place, as training leaves it)."""
    from snac import SNAC

    torch.manual_seed(seed)
    model = SNAC(**{**TINY_CONFIG, **overrides})
    # Snake alphas start at exactly 1 in every channel; spread them, as training does.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("alpha"):
                param.uniform_(0.5, 1.5)
    return model.eval()


def _legacy_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Parametrized weight-norm keys renamed to the old `weight_g`/`weight_v` form."""
    renamed = {}
    for key, value in state.items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        renamed[key] = value
    return renamed


def write_checkpoint(
    model: torch.nn.Module, directory: Path, config: dict[str, Any] | None = None, *, legacy: bool = False
) -> Path:
    """`config.json` + `pytorch_model.bin` in `directory`, laid out like hubertsiuzdak/snac_24khz."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config or TINY_CONFIG), encoding="utf-8")
    state = model.state_dict()
    torch.save(_legacy_keys(state) if legacy else state, directory / "pytorch_model.bin")
    return directory


def random_frames(count: int, seed: int = 0) -> list[list[int]]:
    """`count` SNAC frames of 7 random codes each."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, CODEBOOK_SIZE, size=(count, FRAME_TOKENS)).tolist()
