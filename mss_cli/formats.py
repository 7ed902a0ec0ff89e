"""The output formats mss writes: one table that the encoder, the options and the CLI all read.

Kept free of numpy and soundfile so the CLI can build its choices without importing them.
"""

from __future__ import annotations

from typing import NamedTuple


class OutputFormat(NamedTuple):
    """How one ``--format`` is written: libsndfile's major format, the file extension, and the
    subtype for each ``--bit-depth`` (None: a compressed format, which has no bit depth)."""

    soundfile: str
    extension: str
    subtypes: dict[str, str] | None


FORMATS: dict[str, OutputFormat] = {
    "wav": OutputFormat("WAV", "wav", {"16": "PCM_16", "24": "PCM_24", "32f": "FLOAT"}),
    "flac": OutputFormat("FLAC", "flac", {"16": "PCM_16", "24": "PCM_24"}),
    "mp3": OutputFormat("MP3", "mp3", None),
    "ogg": OutputFormat("OGG", "ogg", None),
}
BIT_DEPTHS: tuple[str, ...] = ("16", "24", "32f")
