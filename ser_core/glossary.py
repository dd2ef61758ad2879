"""The words SER Studio's figures use, each in one plain line, for widget help and the pages' glossary; and the
chance level that belongs beside every score."""
from __future__ import annotations

TERMS: dict[str, str] = {
    "accuracy": "The share of clips the model labels right.",
    "UAR": "Unweighted average recall: how often each emotion is recognised, averaged over the emotions, so a "
           "model cannot score well by always answering the most common one.",
    "macro F1": "Precision and recall of each emotion combined, averaged over the emotions.",
    "chance": "What guessing at random would score: one in the number of emotions.",
    "speaker-independent": "Tested only on voices the model never heard in training, as a new student is.",
    "random split": "Clips shared out at random, so the same voices are on both sides: it flatters the model.",
    "per-speaker normalisation": "Each clip described relative to its speaker's usual voice, so the model "
                                 "compares a voice with itself.",
    "calibration": "A few seconds of someone's everyday speech, so the model learns their usual voice first.",
    "window": "The stretch of sound classified at once, in seconds.",
    "hop": "How often a new window starts: with a 3 s window and a 1 s hop, each second is heard in three "
           "windows.",
    "fold": "One round of testing: the voices are split into groups, and each group is tested once while the "
            "model trains on the others.",
}


def chance(n_labels: int) -> str:
    """ "chance: 12.5% for 8 emotions" """
    return f"chance: {100 / n_labels:.1f}% for {n_labels} emotions"
