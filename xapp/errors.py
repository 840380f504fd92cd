"""The xApp's errors: translated at the boundary where they arise, with messages that name the cause."""

from __future__ import annotations


class XappError(RuntimeError):
    """Base of every error the xApp raises on purpose."""


class ModelLoadError(XappError):
    """A model version cannot be used: missing from the registry, corrupt, or unfit for the subscription."""


class StreamError(XappError):
    """The E2 stream broke or was refused."""
