"""Tiny corpora in real naming schemes, with an emotion a classifier can learn (f0 and loudness)."""
from __future__ import annotations

from pathlib import Path

from tests.clips import write_clip

# RAVDESS emotion code -> (f0 in Hz, level): learnable, like arousal in real speech.
EMOTION_VOICE = {1: (110.0, 0.3), 3: (230.0, 0.6), 4: (90.0, 0.2), 5: (300.0, 0.9)}
RAVDESS_LABELS = {1: "neutral", 3: "happy", 4: "sad", 5: "angry"}


def write_ravdess_tree(root: Path, actors=(1, 2, 3, 4), emotions=tuple(EMOTION_VOICE), takes: int = 3,
                       duration: float = 0.8, sr: int = 16_000, ext: str = "wav") -> list[Path]:
    """RAVDESS-named clips under root/Actor_XX/; each actor shifts every f0 a little."""
    paths = []
    for actor in actors:
        for emotion in emotions:
            f0, level = EMOTION_VOICE[emotion]
            for take in range(takes):
                name = f"03-01-{emotion:02d}-01-{take % 2 + 1:02d}-{take // 2 + 1:02d}-{actor:02d}.{ext}"
                paths.append(write_clip(root / f"Actor_{actor:02d}" / name, duration=duration, sr=sr,
                                        f0=f0 * (1 + 0.04 * actor) * (1 + 0.02 * take), level=level,
                                        seed=actor * 100 + emotion * 10 + take))
    return paths
