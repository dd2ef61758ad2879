"""The Keras model zoo: one builder per architecture the app teaches, sized for a 2-core CPU.

Every builder takes the feature shape, the number of classes and the training config, and returns an
uncompiled keras.Model made of built-in layers only (so .keras files load with safe_mode on). The first
layer standardises the input with statistics adapted on the training data, so a saved model needs no
separate scaler. TensorFlow is imported here only inside functions: importing ser_core stays fast.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

import numpy as np

from .errors import OptionError

if TYPE_CHECKING:
    import keras

# name -> (feature pipeline kinds it accepts, default pipeline)
MODELS: dict[str, tuple[tuple[str, ...], str]] = {
    "mlp": (("clip",), "egemaps"),
    "cnn1d": (("clip",), "librosa180"),
    "cnn1d_deep": (("sequence",), "zcr_rms_mfcc"),
    "cnn2d": (("image",), "logmel"),
    "lstm_attention": (("sequence",), "zcr_rms_mfcc"),
    "hybrid": (("sequence",), "zcr_rms_mfcc"),
}
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "rmsprop")
LSTM_POOL = 3  # LSTM branches read frames averaged 3 by 3 (30 ms steps): a third of the work, same prosody
BN_MOMENTUM = 0.9  # BatchNorm running statistics settle within an epoch or two of a small corpus


def check_model_features(model: str, kind: str, features: str) -> None:
    """Refuse a model/feature pairing that cannot work, with the pairings that can."""
    if model not in MODELS:
        raise OptionError(f"Unknown model {model!r}: choose one of {', '.join(MODELS)}.")
    kinds, default = MODELS[model]
    if kind not in kinds:
        raise OptionError(f"Model {model!r} needs {' or '.join(kinds)}-level features (such as {default!r}); "
                          f"{features!r} gives {kind}-level features.")


def build_model(name: str, X: np.ndarray, n_classes: int, *, dropout: float = 0.3) -> "keras.Model":
    """A fresh model for inputs shaped like X[0], its normalisation adapted on X (the training rows)."""
    keras = import_keras()

    builder: Callable = _BUILDERS[name]
    inputs = keras.Input(shape=X.shape[1:], name="features")
    # Standardise each feature (each mel band for images) by the training data's mean and std.
    norm = keras.layers.Normalization(axis=1 if name == "cnn2d" else -1, name="standardise")
    norm.adapt(X.astype(np.float32))
    hidden = builder(keras, norm(inputs), dropout)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="emotion")(hidden)
    return keras.Model(inputs, outputs, name=name)


def make_optimizer(name: str, learning_rate: float):
    keras = import_keras()
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate)
    raise OptionError(f"Unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}.")


def import_keras():
    """Keras on the TensorFlow backend, quiet: imported on first use only."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Native libraries that must be loaded before TensorFlow's, for the app runs them all in one process:
    # loaded after it, openSMILE corrupts the heap on every eGeMAPS extraction (malloc aborts), e.g. when
    # classifying after training a model, and pylibsrtp (aiortc's SRTP, under the Live page) segfaults on
    # import, e.g. when opening the Live page after training.
    import opensmile  # noqa: F401
    import pylibsrtp  # noqa: F401
    import keras

    # Streamlit calls keras.backend.clear_session() after every script run. That replaces Keras' per-thread
    # state in every thread at once, so a model being built on a training thread loses its layer-name
    # counters half-way ('The name "dense" is used 2 times in the model'). Models here are built per run
    # and never need a cleared session: the call is made to keep the session.
    keras.backend.clear_session = _keep_session
    return keras


def _keep_session(*args, **kwargs) -> None:
    """Stands in for keras.backend.clear_session, which would break training on other threads."""


# --- builders: (keras, standardised input tensor, dropout) -> last hidden tensor -------------------------

def _mlp(keras, x, dropout: float):
    """Dense network on clip-level features, as the MLPClassifier of the notebooks."""
    for units in (256, 128):
        x = keras.layers.Dense(units, activation="relu")(x)
        x = keras.layers.Dropout(dropout)(x)
    return x


def _cnn1d(keras, x, dropout: float):
    """The 180-feature 1D-CNN: the feature vector read as a 1-D signal, two Conv1D blocks."""
    L = keras.layers
    x = L.Reshape((-1, 1))(x)
    for filters in (64, 128):
        x = L.Conv1D(filters, 5, padding="same", activation="relu")(x)
        x = L.Dropout(dropout)(x)
        x = L.MaxPooling1D(4)(x)
    return L.Flatten()(x)


def _conv_stack(keras, x, dropout: float, dims: int, filters: tuple[int, ...], kernel: int):
    """Conv + BatchNorm + ReLU + MaxPool blocks (1-D or 2-D), then global average pooling and dropout."""
    L = keras.layers
    conv, pool, average = ((L.Conv1D, L.MaxPooling1D, L.GlobalAveragePooling1D) if dims == 1 else
                           (L.Conv2D, L.MaxPooling2D, L.GlobalAveragePooling2D))
    for n in filters:
        x = conv(n, kernel, padding="same", use_bias=False)(x)
        x = L.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = L.Activation("relu")(x)
        x = pool(2)(x)
    return L.Dropout(dropout)(average()(x))


def _cnn1d_deep(keras, x, dropout: float):
    """Conv1D + BatchNorm + MaxPool over ZCR/RMS/MFCC frames, pooled over time."""
    return _conv_stack(keras, x, dropout, dims=1, filters=(64, 128, 128), kernel=5)


def _cnn2d(keras, x, dropout: float):
    """Small 2D-CNN on the log-mel image (mels x frames, read as one channel)."""
    x = keras.layers.Reshape((*x.shape[1:], 1))(x)
    return _conv_stack(keras, x, dropout, dims=2, filters=(16, 32, 64), kernel=3)


def _lstm_attention(keras, x, dropout: float, units: int = 64):
    """LSTM over frames, then additive (Bahdanau-style) attention pooling: c = sum_t softmax(v.tanh(W h_t)) h_t."""
    L = keras.layers
    x = L.AveragePooling1D(LSTM_POOL)(x)
    h = L.LSTM(units, return_sequences=True)(x)
    scores = L.Dense(1)(L.Dense(units, activation="tanh")(h))      # (batch, T, 1)
    weights = L.Softmax(axis=1, name="attention")(L.Flatten()(scores))  # (batch, T)
    context = L.Dot(axes=1)([weights, h])                            # (batch, units)
    return L.Dropout(dropout)(context)


def _hybrid(keras, x, dropout: float):
    """LSTM-attention and CNN branches over the same frames, concatenated before a dense head."""
    L = keras.layers
    x = L.Concatenate()([_lstm_attention(keras, x, dropout), _cnn1d_deep(keras, x, dropout)])
    x = L.Dense(128, activation="relu")(x)
    return L.Dropout(dropout)(x)


_BUILDERS = {"mlp": _mlp, "cnn1d": _cnn1d, "cnn1d_deep": _cnn1d_deep, "cnn2d": _cnn2d,
             "lstm_attention": _lstm_attention, "hybrid": _hybrid}
