"""The SNAC 24 kHz model for Orpheus: loading, positional noise, decoding windows of frames.

Everything here is stateless per call: a window of codes in, its audio out. The
streaming scheme that cuts a stream into windows is `snac_stream`; sharing one
model between sessions is `snac_batcher`.

Noise: SNAC 24 kHz adds `randn` noise (scaled by a learned 1x1 conv) in each
decoder block. Fresh noise per call would make overlapping windows disagree and
batch results depend on their batch-mates, so by default the noise is drawn from
fixed tables indexed by absolute sample position ("positional"): same
distribution, but a window decodes to the same audio wherever and with whatever
it is batched. "random" keeps SNAC's own behaviour; "off" drops the noise.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .codes import SAMPLES_PER_FRAME, frames_to_levels

if TYPE_CHECKING:
    from snac import SNAC

logger = logging.getLogger(__name__)

SNAC_24KHZ_CONFIG: dict[str, Any] = {
    "sampling_rate": 24000,
    "encoder_dim": 48,
    "encoder_rates": [2, 4, 8, 8],
    "decoder_dim": 1024,
    "decoder_rates": [8, 8, 4, 2],
    "attn_window_size": None,
    "codebook_size": 4096,
    "codebook_dim": 8,
    "vq_strides": [4, 2, 1],
    "noise": True,
    "depthwise": True,
}
"""hubertsiuzdak/snac_24khz, the codec Orpheus was trained on."""

NOISE_MODES = ("positional", "random", "off")

Levels = tuple[np.ndarray, np.ndarray, np.ndarray]
"""SNAC's three code arrays for F frames: (F,), (2F,), (4F,) (see `codes.frames_to_levels`)."""


# --------------------------------------------------------------------------- loading


def load_snac(
    path: str | Path | None,
    *,
    config: dict[str, Any] | None = None,
    device: str = "cpu",
    noise: str = "positional",
    noise_seed: int = 0,
    keep_encoder: bool = False,
) -> SNAC:
    """A SNAC model ready for decoding: weight norm folded, eval mode, on `device`.

    `path` is a local checkpoint directory as hubertsiuzdak/snac_24khz ships it
    (`config.json` + `pytorch_model.bin`), or the `.bin` file itself with its
    `config.json` beside it; `config` overrides the file's config. With `path`
    None the model is randomly initialised from `config` (default: the 24 kHz
    shape), which is what tests and benchmarks use: weights cannot be downloaded here.
    The encoder is dropped unless `keep_encoder`: decoding never needs it.
    """
    from snac import SNAC  # the orpheus extra: imported only when a model is loaded

    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"SNAC checkpoint {path} not found")
        directory = path if path.is_dir() else path.parent
        weights = path if path.is_file() else directory / "pytorch_model.bin"
        if config is None:
            config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        model = SNAC(**config)
        # weights_only: a checkpoint is data, never code to run.
        state = torch.load(weights, map_location="cpu", weights_only=True)
        # Old checkpoints carry weight_g/weight_v; torch's weight_norm parametrization converts them on load.
        model.load_state_dict(state, strict=True)
        logger.info("SNAC loaded from %s", weights)
    else:
        model = SNAC(**(config if config is not None else SNAC_24KHZ_CONFIG))
        logger.info("SNAC randomly initialised (no checkpoint path)")
    hop = math.prod(model.decoder_rates)
    if list(model.vq_strides) != [4, 2, 1] or hop * 4 != SAMPLES_PER_FRAME:
        raise ValueError(
            f"Orpheus needs SNAC's 24 kHz layout (vq_strides [4, 2, 1], 512 samples per step), "
            f"got vq_strides {model.vq_strides} and {hop} samples per step"
        )
    remove_weight_norm(model)
    if not keep_encoder:
        model.encoder = nn.Identity()
    set_noise_mode(model, noise, seed=noise_seed)
    model.eval()
    return model.to(resolve_device(device))


def resolve_device(device: str) -> torch.device:
    """`device`, or the CPU with a warning when CUDA is asked for and missing."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("SNAC: device %r requested but CUDA is not available; decoding on the CPU", device)
        return torch.device("cpu")
    return torch.device(device)


def remove_weight_norm(model: nn.Module) -> int:
    """Fold weight norm into plain weights in every module (it only costs time at inference).

    Handles both the parametrization API (snac >= 1.2) and the older hook API.
    Returns how many modules were changed.
    """
    from torch.nn.utils import parametrize

    changed = 0
    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
            changed += 1
        elif hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            torch.nn.utils.remove_weight_norm(module)
            changed += 1
    return changed


# --------------------------------------------------------------------------- noise


class _NoiseState(threading.local):
    """Per-model decode-call state shared by its noise modules: each window's start, in latent steps.

    Thread-local, so several batcher workers can decode with one model at once.
    """

    def __init__(self) -> None:
        self.start_steps: tuple[int, ...] | None = None


class PositionalNoise(nn.Module):
    """SNAC's NoiseBlock with noise read from a fixed table at absolute positions.

    Keeps the block's `linear` (same state-dict keys). `samples_per_step` is this
    block's resolution in samples per latent step (4 latent steps per frame).
    """

    def __init__(self, linear: nn.Module, samples_per_step: int, table: torch.Tensor, state: _NoiseState):
        super().__init__()
        self.linear = linear
        self.samples_per_step = samples_per_step
        self.register_buffer("table", table, persistent=False)
        self._state = state

    def _noise(self, start: int, length: int) -> torch.Tensor:
        size = self.table.numel()
        begin = (start * self.samples_per_step) % size
        if begin + length <= size:
            return self.table[begin : begin + length]  # a view: no gather
        index = (begin + torch.arange(length, device=self.table.device)) % size
        return self.table[index]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, length = x.shape
        starts = self._state.start_steps or (0,) * batch
        if len(starts) != batch:
            raise RuntimeError(f"noise offsets for {len(starts)} windows, batch has {batch}")
        noise = torch.stack([self._noise(start, length) for start in starts]).unsqueeze(1).to(x.dtype)
        return torch.addcmul(x, noise, self.linear(x))


class _NoNoise(nn.Module):
    def __init__(self, linear: nn.Module):
        super().__init__()
        self.linear = linear  # kept so state dicts still match

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _noise_block(
    mode: str, linear: nn.Module, samples_per_step: int, seed: int, table_size: int, state: _NoiseState
) -> nn.Module:
    if mode == "off":
        return _NoNoise(linear)
    if mode == "random":
        from snac.layers import NoiseBlock

        block = NoiseBlock(1)
        block.linear = linear
        return block
    table = torch.randn(table_size, generator=torch.Generator().manual_seed(seed))
    device = next(linear.parameters()).device
    return PositionalNoise(linear, samples_per_step, table.to(device), state)


def set_noise_mode(model: nn.Module, mode: str, *, seed: int = 0, table_size: int = 1 << 20) -> None:
    """Replace SNAC's decoder noise blocks according to `mode` (see the module docstring)."""
    if mode not in NOISE_MODES:
        raise ValueError(f"noise mode {mode!r} not in {NOISE_MODES}")
    decoder = getattr(model, "decoder", None)
    if decoder is None:
        return
    state = _NoiseState()
    model._rvg_noise_state = state  # type: ignore[assignment]
    samples_per_step = 1
    stage = 0
    for block in decoder.model:
        inner = getattr(block, "block", None)
        if inner is None:
            continue
        for i, layer in enumerate(inner):
            if isinstance(layer, nn.ConvTranspose1d):
                samples_per_step *= int(layer.stride[0])
            if type(layer).__name__ in ("NoiseBlock", "PositionalNoise", "_NoNoise"):
                inner[i] = _noise_block(
                    mode, layer.linear, samples_per_step, seed * 1000 + stage, table_size, state
                )
                stage += 1


# --------------------------------------------------------------------------- decoding


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def decode_windows(model: nn.Module, windows: Sequence[tuple[Levels, int]]) -> list[np.ndarray]:
    """Decode windows of equal frame count in one SNAC call; each (levels, start_frame) gets its own audio.

    `start_frame` is the window's absolute position in its stream, for positional noise.
    """
    if not windows:
        return []
    frames = {levels[0].shape[0] for levels, _ in windows}
    if len(frames) != 1:
        raise ValueError(f"windows of different lengths in one batch: {sorted(frames)}")
    device = model_device(model)
    codes = [
        torch.as_tensor(np.stack([levels[k] for levels, _ in windows]), dtype=torch.long, device=device)
        for k in range(3)
    ]
    state: _NoiseState | None = getattr(model, "_rvg_noise_state", None)
    with torch.inference_mode():
        if state is not None:
            state.start_steps = tuple(4 * start for _, start in windows)
        try:
            audio = model.decode(codes)
        finally:
            if state is not None:
                state.start_steps = None
    out = audio[:, 0, :].float().cpu().numpy()
    return [np.ascontiguousarray(row) for row in out]


def decode_all(model: nn.Module, frames: Sequence[Sequence[int]]) -> np.ndarray:
    """The whole sequence in one call: the reference a stream's output is compared against."""
    return decode_windows(model, [(frames_to_levels(frames), 0)])[0]
