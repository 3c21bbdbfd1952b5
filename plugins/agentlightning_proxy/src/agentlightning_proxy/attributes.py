"""Span attributes the proxy adds to the GenAI conventions' ones (``agentlightning.proxy.*``).

The call itself (model, messages, tool calls, finish reasons, usage, response id, token
ids) is recorded under the names of :mod:`agentlightning_core.semconv`, like the tracer's.
"""

from __future__ import annotations

__all__ = [
    "CAPTURE_ERROR",
    "EMBEDDING_INPUTS",
    "HTTP_STATUS",
    "REQUEST_BODY_RAW",
    "RESPONSE_BODY_RAW",
    "RESPONSE_LOGPROBS",
    "RETRIES",
    "SURFACE",
    "TOKEN_DRIFT",
    "TTFB_MS",
    "UNATTRIBUTED_ID",
    "UPSTREAM",
    "URL_PATH",
]

HTTP_STATUS = "http.response.status_code"
"""The status the client received (the upstream's, or the proxy's own for its errors)."""
URL_PATH = "url.path"
SURFACE = "agentlightning.proxy.surface"
"""``chat.completions``, ``completions``, ``responses``, ``embeddings`` or ``messages``."""
UPSTREAM = "agentlightning.proxy.upstream"
"""Name of the upstream that answered (the last one tried)."""
RETRIES = "agentlightning.proxy.retries"
TTFB_MS = "agentlightning.proxy.ttfb_ms"
"""Milliseconds from the request reaching the proxy to the upstream's response headers."""
RESPONSE_LOGPROBS = "agentlightning.llm.response_logprobs"
"""Log probabilities of the first choice's tokens, when the upstream returns them."""
TOKEN_DRIFT = "agentlightning.proxy.token_drift"
"""True when this call's prompt token ids do not extend the previous call's prompt +
completion in the same attempt (re-tokenization drift)."""
REQUEST_BODY_RAW = "agentlightning.proxy.request_body"
"""The request body as received, when it is not a JSON object."""
RESPONSE_BODY_RAW = "agentlightning.proxy.response_body"
"""The response body (or its start), when it cannot be parsed or is an error."""
CAPTURE_ERROR = "agentlightning.proxy.capture_error"
"""Why part of a body could not be read into attributes (the call itself went through)."""
EMBEDDING_INPUTS = "agentlightning.proxy.embedding_inputs"

UNATTRIBUTED_ID = "unattributed"
"""``rollout_id`` and ``attempt_id`` of the spans kept for calls without a known rollout."""
