"""Typed errors whose message a user can act on; the CLI and the app show str(error)."""
from __future__ import annotations


class SerError(Exception):
    """Base of every error SER Studio reports to a user instead of a traceback."""


class AudioError(SerError):
    """The input could not be used as audio."""


class EmptyAudioError(AudioError):
    """The file or upload holds no bytes or no samples."""


class NotAudioError(AudioError):
    """The content is not an audio format we can read."""


class CorruptAudioError(AudioError):
    """The content looks like audio but cannot be decoded."""


class SilentAudioError(AudioError):
    """The clip holds no audible signal."""


class TooShortError(AudioError):
    """The clip is shorter than the minimum duration."""


class TooLongError(AudioError):
    """The clip is longer than the configured limit for loading whole."""


class DatasetError(SerError):
    """A data root or corpus is missing or unusable."""


class ModelError(SerError):
    """A model bundle is missing, corrupt or does not match this code."""


class OptionError(SerError, ValueError):
    """An option does not fit: an unknown name, or a protocol the selected data cannot support."""


class DownloadError(SerError):
    """A corpus could not be downloaded, verified or unpacked; the message says why and what to do."""
