"""Store errors <-> HTTP answers: the status a server gives an exception, the exception a client raises.

An error answer is ``{"error": <exception class name>, "message": <text>}`` with a 4xx/5xx
status. A client raises the core's error class of that name when there is one (so
``RolloutNotFoundError`` crosses the wire as itself), else one chosen by the status.
"""

from __future__ import annotations

from agentlightning_core import errors

__all__ = ["error_body", "exception_for_error", "status_for_exception"]


def status_for_exception(exc: BaseException) -> int:
    """HTTP status of an exception raised by the store (or by decoding the request)."""
    if isinstance(exc, errors.SpansEvictedError):
        return 410
    if isinstance(exc, (errors.NotFoundError, LookupError)):
        return 404
    if isinstance(exc, (ValueError, TypeError)):
        return 422
    return 500


def error_body(name: str, message: str) -> dict[str, str]:
    return {"error": name, "message": message}


_BUILTIN_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "TypeError": TypeError,
    "KeyError": errors.NotFoundError,
    "LookupError": LookupError,
}
_STATUS_ERRORS: dict[int, type[Exception]] = {
    401: PermissionError,
    403: PermissionError,
    404: errors.NotFoundError,
    410: errors.SpansEvictedError,
}


def exception_for_error(status: int, name: str | None, message: str) -> Exception:
    """The exception a client raises for an error answer: the core's class of that name when
    there is one, else one chosen by status (validation errors are ``ValueError``)."""
    cls: type[Exception] | None = None
    if name:
        found = getattr(errors, name, None)
        if isinstance(found, type) and issubclass(found, errors.AgentLightningError):
            cls = found
        else:
            cls = _BUILTIN_ERRORS.get(name)
    if cls is None:
        cls = errors.StoreUnavailableError if status >= 500 else _STATUS_ERRORS.get(status, ValueError)
    return cls(message)
