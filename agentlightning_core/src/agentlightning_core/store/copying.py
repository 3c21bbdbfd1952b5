"""Fast copies of the stores' records, for the store backends: see :mod:`agentlightning_core._records`.

``copier(cls, changed)`` and ``replace(obj, **changes)`` copy a rollout, attempt, worker or
span without running validators (the store validated the changed values), at a fraction of
``attrs.evolve``'s cost. A span's new sequence id: :meth:`Span.with_sequence_id`.
"""

from __future__ import annotations

from agentlightning_core._records import copier, replace

__all__ = ["copier", "replace"]
