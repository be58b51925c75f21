"""Reading the small files that settings name: config files, certificates, keys, key sets.

A path in a setting may name anything: a FIFO (opening it for reading blocks until someone writes,
so startup would hang silently), ``/dev/zero`` (reads without end), a directory, a socket. Only a
regular file of a sensible size is read; anything else is a one-line error naming the path, so a
configuration mistake fails fast instead of hanging or eating memory.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["MAX_SETTINGS_FILE_BYTES", "FileProblem", "read_small_file"]

MAX_SETTINGS_FILE_BYTES = 4 * 1024 * 1024
"""Config files, PEM material and key sets are a few KiB; 4 MiB leaves room for long CA bundles."""


class FileProblem(Exception):
    """A file named in the configuration cannot be used; the message is one line naming the path."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_small_file(path: str | os.PathLike[str], limit: int = MAX_SETTINGS_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or FileProblem saying what is wrong.

    The file is opened without blocking and checked on the open descriptor, so a FIFO cannot
    block the open and a file swapped between a check and the open is still caught.
    """
    where = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(where, flags)
    except FileNotFoundError:
        raise FileProblem(f"'{where}' does not exist") from None
    except IsADirectoryError:
        raise FileProblem(f"'{where}' is a directory, expected a regular file") from None
    except OSError as e:
        raise FileProblem(f"cannot read '{where}': {e.strerror or e}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(f"'{where}' is {_kind(info.st_mode)}, expected a regular file")
        if info.st_size > limit:
            raise FileProblem(f"'{where}' is too large ({info.st_size} bytes, at most {limit} allowed)")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while being read
                raise FileProblem(f"'{where}' is too large (more than {limit} bytes)")
        return b"".join(chunks)
    except OSError as e:
        raise FileProblem(f"cannot read '{where}': {e.strerror or e}") from None
    finally:
        os.close(fd)
