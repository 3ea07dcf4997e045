"""The library's errors: what a caller reports to its user as a one-line message."""


class BadInputError(ValueError):
    """Input that cannot be used as given: a missing or malformed file or folder, a file that is
    not the given format, too many rejected rows, a damaged model or export.

    The message names what is wrong and where (the path, line or field).
    """


class RowsLostError(RuntimeError):
    """A pipeline step wrote fewer rows than it read (seen with Beam's multi_processing direct
    mode); the message gives both counts per split."""
