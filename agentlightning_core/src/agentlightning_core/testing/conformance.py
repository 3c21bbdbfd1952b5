"""The base of the conformance suites: their tests run unchanged against every implementation.

A suite is a direct subclass of :class:`ConformanceSuite`; an implementation's test class
subclasses the suite and provides its fixtures. Redefining one of the suite's tests there
is refused when the class is created (at collection), unless the new definition is marked
``@pytest.mark.xfail(reason=...)``: the one honest way to say "this implementation does not
meet that part of the contract yet"::

    class TestMyStore(StoreConformance):
        @pytest.mark.xfail(reason="MyStore has no watchdog yet", strict=True)
        async def test_a_silent_attempt_becomes_unresponsive(self, store):
            await super().test_a_silent_attempt_becomes_unresponsive(store)
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConformanceSuite", "xfail_reason"]


def xfail_reason(test: Any) -> str | None:
    """The reason of ``test``'s ``pytest.mark.xfail`` mark, or None without one (or without a reason)."""
    for mark in getattr(test, "pytestmark", ()):
        if getattr(mark, "name", None) == "xfail":
            reason = mark.kwargs.get("reason")
            if isinstance(reason, str) and reason.strip():
                return reason
    return None


class ConformanceSuite:
    """Base of the conformance suites (``StoreConformance``, ``TracerConformance``, ...)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if ConformanceSuite in cls.__bases__:
            return  # a suite: it defines the tests
        for suite in cls.__mro__[1:]:
            if ConformanceSuite not in suite.__bases__:
                continue
            for name in vars(suite).keys() & vars(cls).keys():
                if name.startswith("test") and xfail_reason(vars(cls)[name]) is None:
                    raise TypeError(
                        f"{cls.__qualname__}.{name} redefines a test of {suite.__name__}; the suite's "
                        "tests run unchanged. Remove it, or mark it "
                        '@pytest.mark.xfail(reason="...") to record a known gap.'
                    )
