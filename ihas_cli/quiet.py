"""A quiet standard error for the `ihas` command: TensorFlow's C++ log lines below WARNING go.

TensorFlow 2.21 logs through absl before absl's logging is initialized, so
`TF_CPP_MIN_LOG_LEVEL` no longer silences its INFO lines (oneDNN, CUDA drivers, CPU features).
`filter_stderr` puts a pipe in front of file descriptor 2 (what C++ writes to) and passes every
line on except those INFO lines, absl's "All log messages before absl::InitializeLog()" notice
and the "failed call to cuInit" error of a machine without a GPU. Everything else, Python's
output and progress bars included, goes through unchanged; `ihas --verbose` keeps all of it.
"""

import atexit
import logging
import os
import re
import sys
import threading

_DROPPED = re.compile(
    rb"(?:I\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] "  # an absl/TF INFO line
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit)"
)
# What may still become a dropped line: held until its line ends, the rest passes at once.
_MAYBE = re.compile(rb"(?:I\d{0,4}|E\d{0,4}|W(?:A(?:R(?:N(?:I(?:N(?:G)?)?)?)?)?)?)(?:[ :].*)?",
                    re.DOTALL)


def quiet_python_loggers() -> None:
    """TensorFlow's and absl's Python loggers at WARNING (their INFO lines dropped)."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("tensorflow").setLevel(logging.WARNING)


def filter_stderr() -> None:
    """Drops TensorFlow's and absl's C++ lines below WARNING from this process's stderr.

    Child processes inherit the filter. At exit, what is left is flushed and fd 2 restored.
    """
    sys.stderr.flush()
    target, restore = os.dup(2), os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, target), name="stderr-filter",
                            daemon=True)
    pump.start()

    def finish():
        sys.stderr.flush()
        os.dup2(restore, 2)  # the pipe's last writer closes: the pump reads its end
        os.close(restore)
        pump.join(timeout=5)

    atexit.register(finish)


def _pump(read_end: int, target: int) -> None:
    pending = b""
    with os.fdopen(read_end, "rb", buffering=0) as source:
        while chunk := source.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(line + b"\n" for line in lines if not _DROPPED.match(line))
            if pending and not _MAYBE.fullmatch(pending):  # a progress bar's \r update
                out, pending = out + pending, b""
            _write(target, out)
    if pending and not _DROPPED.match(pending):
        _write(target, pending)
    os.close(target)


def _write(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
