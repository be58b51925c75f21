"""Numeric error codes shared with clients, with retry flags in the high bits."""

from __future__ import annotations

from typing import Final

__all__ = ["CODE_MASK", "ErrorCode"]

CODE_MASK: Final = 0xFFFF
"""The low 16 bits of an error code are the code itself; the high 16 bits are retry flags."""
_CODE_MASK: Final = CODE_MASK


class ErrorCode:
    """Numeric error codes shared with clients.

    The codes are plain ints, not an Enum, because clients and user code receive them from JSON and
    compare them with ints. The low 16 bits are the code itself, the high 16 bits are flags telling the
    client whether retrying makes sense: on the same server (``RETRY_HERE``), on another replica
    (``RETRY_OTHER``) or on any (``RETRY_ANY``). User-defined codes start at ``CUSTOM_START``.
    """

    UNKNOWN: Final = 0
    BAD_ARGUMENT: Final = 1
    BAD_REQUEST: Final = 2
    UNSUPPORTED_SERVICE: Final = 3
    INVALID_TICKET: Final = 4
    COMMAND_FAILED: Final = 5
    COMMAND_CANCELLED: Final = 6
    COMMAND_CANCEL_NOT_POSSIBLE: Final = 7
    COMMAND_RESULT_CONSUMED: Final = 8

    RETRY_HERE: Final = 0x1_0000
    RETRY_OTHER: Final = 0x2_0000
    RETRY_ANY: Final = 0x3_0000

    TIMEOUT: Final = 100
    POLL: Final = RETRY_HERE | 101
    BACKPRESSURE: Final = RETRY_ANY | 102
    INTERNAL_ERROR: Final = RETRY_OTHER | 500
    NOT_READY: Final = RETRY_ANY | 501
    SHUTTING_DOWN: Final = RETRY_OTHER | 502
    NOT_IMPLEMENTED: Final = 503

    CUSTOM_START: Final = 1000

    @classmethod
    def name(cls, code: int) -> str:
        """Human-readable name for logs and messages; retry flags are ignored so that the number
        shown is the one documented for the code."""
        if code < 0:
            return f"unknown ({code})"
        low = code & _CODE_MASK
        known = _CODE_NAMES.get(low)
        if known is not None:
            return f"{known} ({low})"
        if low >= cls.CUSTOM_START:
            return f"custom ({low})"
        return f"unknown ({low})"

    @classmethod
    def is_retry_here(cls, code: int) -> bool:
        return bool(code & cls.RETRY_HERE)

    @classmethod
    def is_retry_other(cls, code: int) -> bool:
        return bool(code & cls.RETRY_OTHER)

    @classmethod
    def is_retry_any(cls, code: int) -> bool:
        """True only when both retry flags are set: the client may pick any replica."""
        return code & cls.RETRY_ANY == cls.RETRY_ANY

    @classmethod
    def is_retryable(cls, code: int) -> bool:
        return bool(code & cls.RETRY_ANY)


_CODE_NAMES: Final[dict[int, str]] = {
    value & _CODE_MASK: attr.lower()
    for attr, value in vars(ErrorCode).items()
    if attr.isupper() and attr not in ("RETRY_HERE", "RETRY_OTHER", "RETRY_ANY", "CUSTOM_START")
}
