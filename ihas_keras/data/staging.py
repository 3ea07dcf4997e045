"""Output folders that are replaced whole or not at all."""

import contextlib
import os
import shutil
from collections.abc import Iterator


@contextlib.contextmanager
def staged(out_dir: str) -> Iterator[str]:
    """A fresh sibling folder to write OUT_DIR's new content into; it replaces OUT_DIR when the
    block completes, and is removed when the block raises.

    A run killed inside the block leaves OUT_DIR as it was (and `OUT_DIR.partial`, cleared by the
    next run); killed while swapping, it leaves no OUT_DIR at all, never old and new files mixed.

    Args:
        out_dir: the folder the block's output is for.

    Yields:
        The staging folder, `OUT_DIR.partial`.
    """
    out_dir = os.path.normpath(out_dir)
    stage, old = out_dir + ".partial", out_dir + ".old"
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(out_dir):
        os.rename(out_dir, old)
    os.rename(stage, out_dir)
    shutil.rmtree(old, ignore_errors=True)
