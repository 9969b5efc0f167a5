"""User-facing errors. The CLI prints their message as one line (no traceback) and exits 2,
so every message names the problem and the fix."""

from __future__ import annotations


class MetaD2AError(Exception):
    """Base class of errors caused by input (files, flags, shapes) rather than by a bug."""


class CheckpointError(MetaD2AError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


class DataFileError(MetaD2AError):
    """A data file is missing, unreadable, or not in the expected format."""


class DownloadError(MetaD2AError):
    """A download failed: HTTP error, HTML page instead of the file, truncated body, wrong size or hash."""
