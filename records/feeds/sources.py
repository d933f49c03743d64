"""Errors raised by feed sources."""


class SourceError(Exception):
    """A feed source could not be read; terminal for this run (recorded on a failed IngestRun)."""


class TransientSourceError(SourceError):
    """A source error worth retrying: a timeout, a refused connection, a 5xx from the partner."""
