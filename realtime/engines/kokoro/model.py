"""The Kokoro ONNX model: one InferenceSession for every session, with its durations as an output.

Kokoro's shipped exports output audio only, but the model predicts how many frames each phoneme lasts
before its length regulator repeats the phoneme's features that many times: the graph computes
`Round(Sum(Sigmoid(duration_proj)) / speed)`, clips it to at least 1 and casts it to int64 (nodes
`/encoder/Round` -> `/encoder/Clip` -> `/encoder/Cast` in the v1.0 export). That int64 tensor is
exactly the alignment the audio was made with, so it is appended as a graph output at load time
(`onnx` edits the graph in memory; the file is untouched). An export that already outputs
`duration` is used as it is. One frame is `HOP` samples (25 ms at 24 kHz); the durations include
the two pad tokens around the phonemes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..base import EngineError
from ..onnx_arena import ShrinkableSession

log = logging.getLogger(__name__)

SAMPLE_RATE = 24_000
HOP = 600
"""Audio samples per predicted duration frame (the decoder's upsampling: 24 kHz / 40 frames a second)."""
MAX_TOKENS = 510
"""Phonemes one call may hold (the style table has 510 rows; two pad tokens make 512 positions)."""


def duration_tensor(graph: Any) -> str:
    """The name of the int64 per-phoneme duration tensor: Cast(to int64) of Clip of a Round whose
    input is divided by the `speed` input. EngineError if the graph has none."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for node in graph.node:
        if node.op_type != "Round":
            continue
        div = producers.get(node.input[0])
        if div is None or div.op_type != "Div" or "speed" not in div.input:
            continue
        for clip in consumers.get(node.output[0], []):
            if clip.op_type != "Clip":
                continue
            for cast in consumers.get(clip.output[0], []):
                to = next((a.i for a in cast.attribute if a.name == "to"), None)
                if cast.op_type == "Cast" and to == 7:  # TensorProto.INT64
                    return str(cast.output[0])
    raise EngineError("kokoro model: no duration tensor (Round -> Clip -> Cast to int64) in the graph")


def with_duration_output(path: Path) -> tuple[bytes, str]:
    """The model at `path`, serialized, with the phoneme durations as an output; and that output's name."""
    import onnx

    model = onnx.load(str(path))
    outputs = [o.name for o in model.graph.output]
    for name in ("duration", "durations"):
        if name in outputs:
            return model.SerializeToString(), name
    name = duration_tensor(model.graph)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None))
    return model.SerializeToString(), name


def providers(device: str) -> list[str]:
    """CUDA first when asked for, or when `auto` and onnxruntime-gpu offers it; the CPU always last."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise EngineError(
            "kokoro device 'cuda': onnxruntime has no CUDA provider (install the kokoro-gpu extra)"
        )
    if device in ("cuda", "auto") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class KokoroModel:
    """One loaded model: `run` maps tokens, a style vector and a speed to audio and frame durations.
    Thread-safe (ONNX Runtime sessions may run concurrently), so every worker shares it."""

    def __init__(self, path: Path, *, threads: int, spin_wait: bool, device: str) -> None:
        import onnxruntime

        data, self._durations = with_duration_output(path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if not spin_wait:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        chosen = providers(device)
        self.session = ShrinkableSession(
            onnxruntime.InferenceSession(data, sess_options=options, providers=chosen)
        )
        # What the session really runs on: a GPU build on a machine without a GPU falls back to the CPU.
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        inputs = {i.name: i.type for i in self.session.get_inputs()}
        self._tokens = "input_ids" if "input_ids" in inputs else "tokens"
        self._dtypes = {name: _numpy_type(kind) for name, kind in inputs.items()}
        self._outputs = [self.session.get_outputs()[0].name, self._durations]

    def run(self, tokens: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        """Audio (float32 mono, 24 kHz) and frames per position (pads included: len(tokens) + 2)."""
        speed_type = self._dtypes.get("speed", np.float32)
        feed = {
            self._tokens: np.array([[0, *tokens, 0]], dtype=self._dtypes.get(self._tokens, np.int64)),
            "style": np.asarray(style, dtype=self._dtypes.get("style", np.float32)).reshape(1, -1),
            "speed": np.array(
                [speed if np.dtype(speed_type).kind == "f" else round(speed)], dtype=speed_type
            ),
        }
        audio, frames = self.session.run(self._outputs, feed)
        return np.asarray(audio, dtype=np.float32).ravel(), np.asarray(frames, dtype=np.int64).ravel()


def _numpy_type(onnx_type: str) -> type:
    return {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float16)": np.float16,
            "tensor(double)": np.float64}.get(onnx_type, np.float32)  # fmt: skip
