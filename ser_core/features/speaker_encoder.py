"""The speaker encoder of Resemblyzer (models/ge2e-encoder, GE2E-trained), run in numpy for the ge2e pipelines.

A 3-layer LSTM trained to tell thousands of voices apart; converted once from PyTorch to a plain .npz, so no
torch is needed and no pickle is ever loaded (tests compare its output with what PyTorch gave).
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import config
from ..errors import ModelError
from . import dsp

# The speaker encoder's input, fixed by its training: 40 mel powers of 25 ms frames every 10 ms at 16 kHz.
ENCODER_RATE, ENCODER_N_FFT, ENCODER_HOP, ENCODER_N_MELS = 16_000, 400, 160, 40
ENCODER_LAYERS, ENCODER_SIZE = 3, 256  # LSTM layers, and units in each (values in each part below)
ENCODER_PARTS = ("embedding", "hidden_1", "hidden_2", "hidden_3", "cell_1", "cell_2", "cell_3", "mean", "std")


def speaker_encoder_features(y: np.ndarray, p: Mapping[str, Any]) -> np.ndarray:
    """The ge2e values of a clip: its trimmed mel powers at p["dbfs"] through the encoder (float32, 2304)."""
    frames = dsp.frames(y, ENCODER_N_FFT, ENCODER_HOP)
    power = dsp.stft_power(frames)
    keep = dsp.loud_span(power.sum(axis=1), p["trim_db"])
    speech = dsp.span_samples(y, keep, ENCODER_HOP)
    loudness = float(np.mean(np.square(speech, dtype=np.float64))) if len(speech) else 0.0
    gain = 10.0 ** (p["dbfs"] / 10) / max(loudness, 1e-10)  # power gain: the samples' mean square to dbfs
    mel = power[keep] @ dsp.mel_basis(ENCODER_RATE, ENCODER_N_FFT, ENCODER_N_MELS).T * np.float32(gain)
    return encode_speaker(mel)


def encode_speaker(mel: np.ndarray) -> np.ndarray:
    """Run the speaker encoder (models/ge2e-encoder) over (frames, 40) mel powers; float32 (2304,).

    Its L2-normalised embedding (ReLU of a linear map of the top layer's last hidden state), each layer's last
    hidden and cell state, and the mean and std over frames of the top layer's outputs, in ENCODER_PARTS order.
    """
    weights = _encoder_weights()
    n = ENCODER_SIZE
    x = np.asarray(mel, dtype=np.float32)
    hidden, cell = [], []
    for layer in range(ENCODER_LAYERS):
        inputs = x @ weights[f"weight_ih_{layer}"].T + weights[f"bias_{layer}"]  # (frames, 4 n), all at once
        recurrent = np.ascontiguousarray(weights[f"weight_hh_{layer}"].T)
        h = np.zeros(n, np.float32)
        c = np.zeros(n, np.float32)
        x = np.empty((len(inputs), n), np.float32)
        for t, gates in enumerate(inputs):  # torch's gate order: input, forget, cell, output
            a = gates + h @ recurrent
            s = 0.5 + 0.5 * np.tanh(0.5 * a)  # the logistic sigmoid of all four at once, without overflow
            c = s[n:2 * n] * c + s[:n] * np.tanh(a[2 * n:3 * n])
            h = x[t] = s[3 * n:] * np.tanh(c)
        hidden.append(h)
        cell.append(c)
    embedding = np.maximum(weights["linear_weight"] @ h + weights["linear_bias"], 0)
    embedding /= max(float(np.linalg.norm(embedding)), 1e-12)
    return np.concatenate([embedding, *hidden, *cell, x.mean(axis=0), x.std(axis=0)]).astype(np.float32)


@functools.cache
def _encoder_weights() -> dict[str, np.ndarray]:
    """The speaker encoder's arrays, read once per process (plain .npz: no pickle is ever loaded)."""
    try:
        with np.load(config.GE2E_WEIGHTS, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        raise ModelError(f"the speaker encoder of the ge2e features cannot be read from {config.GE2E_WEIGHTS} "
                         f"({error}); restore models/ge2e-encoder from the project") from error
