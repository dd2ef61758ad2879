"""Convert Resemblyzer 0.1.4's pretrained speaker encoder (a PyTorch checkpoint) to weights.npz, plain arrays
that ser_core.features reads with numpy alone: no torch, no pickle.

Run by hand where torch is installed (not a dependency of SER Studio); see README.md beside this file:
    python models/ge2e-encoder/convert.py PATH/TO/resemblyzer/pretrained.pt
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

LAYERS, HIDDEN, N_MELS = 3, 256, 40


def main(checkpoint: str) -> None:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model_state"]  # no code is unpickled
    lstm = torch.nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
    linear = torch.nn.Linear(HIDDEN, HIDDEN)
    lstm.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k.removeprefix("linear."): v for k, v in state.items() if k.startswith("linear.")})

    # A reference: torch's own outputs for a fixed input, which tests/test_features.py asks numpy to reproduce.
    mel = (np.random.default_rng(0).standard_normal((120, N_MELS)) ** 2 * 1e-3).astype(np.float32)
    with torch.no_grad():
        outputs, (hidden, cell) = lstm(torch.from_numpy(mel)[None])
        embedding = torch.relu(linear(hidden[-1]))[0]
        reference = torch.cat([embedding / embedding.norm(), hidden[:, 0].flatten(), cell[:, 0].flatten(),
                               outputs[0].mean(0), outputs[0].std(0, unbiased=False)]).numpy()

    arrays = {"linear_weight": state["linear.weight"].numpy(), "linear_bias": state["linear.bias"].numpy(),
              "reference_mel": mel, "reference_features": reference}
    for layer in range(LAYERS):  # torch's gate order (input, forget, cell, output), both biases summed
        arrays[f"weight_ih_{layer}"] = state[f"lstm.weight_ih_l{layer}"].numpy()
        arrays[f"weight_hh_{layer}"] = state[f"lstm.weight_hh_l{layer}"].numpy()
        arrays[f"bias_{layer}"] = (state[f"lstm.bias_ih_l{layer}"] + state[f"lstm.bias_hh_l{layer}"]).numpy()
    out = Path(__file__).with_name("weights.npz")
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1])
