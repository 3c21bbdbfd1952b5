"""The OpenAPI 3.1 description of the store server, built from the operation table."""

from __future__ import annotations

from typing import Any

from agentlightning_core import __version__
from agentlightning_core.remote._protocol import OPERATIONS
from agentlightning_core.remote._schema import model_schemas
from agentlightning_core.resources import LLM, PromptTemplate, ProxyLLM, ResourcesUpdate
from agentlightning_core.spans import Span
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.types import Attempt, AttemptedRollout, Rollout, RolloutConfig, Worker

__all__ = ["MODEL_CLASSES", "openapi_document"]

MODEL_CLASSES: tuple[type, ...] = (
    Rollout,
    RolloutConfig,
    Attempt,
    AttemptedRollout,
    EnqueueRequest,
    Span,
    LLM,
    ProxyLLM,
    PromptTemplate,
    ResourcesUpdate,
    Worker,
)

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "Error name, e.g. RolloutNotFoundError or InvalidRequest"},
        "message": {"type": "string", "description": "What was wrong and what to do"},
    },
    "required": ["error", "message"],
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_ERRORS = {
    "400": _error("Malformed body (not JSON, bad gzip)"),
    "401": _error("Missing or wrong bearer token"),
    "404": _error("Unknown id (the message names it)"),
    "410": _error("The rollout's spans were evicted"),
    "413": _error("Body larger than the server's limit"),
    "422": _error("Well-formed body with invalid values"),
}


def openapi_document(*, bearer: bool = True) -> dict[str, Any]:
    """The OpenAPI description as a JSON-compatible dict; ``bearer``: the server wants a token."""
    schemas = model_schemas(*MODEL_CLASSES)
    schemas["Error"] = _ERROR_SCHEMA
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness probe (no token needed)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The server is up",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"const": "ok"}},
                                    "required": ["status"],
                                }
                            }
                        },
                    }
                },
            }
        },
        "/v1/traces": {
            "post": {
                "operationId": "otlp_export_traces",
                "summary": "OTLP/HTTP trace export; spans carry agentlightning.rollout_id / agentlightning.attempt_id",
                "tags": ["spans"],
                "requestBody": {
                    "required": True,
                    "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {
                    "200": {
                        "description": "ExportTraceServiceResponse (partial_success counts rejected spans)",
                        "content": {
                            "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "400": _ERRORS["400"],
                    "401": _ERRORS["401"],
                    "413": _ERRORS["413"],
                    "415": _error("Not protobuf"),
                },
            }
        },
    }
    for op in OPERATIONS.values():
        paths[op.path] = {
            "post": {
                "operationId": op.name,
                "summary": op.summary,
                "tags": [op.tag],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": op.body_schema()}},
                },
                "responses": {
                    "200": {
                        "description": "The method's result",
                        "content": {"application/json": {"schema": op.result.schema()}},
                    },
                    **_ERRORS,
                },
            }
        }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Agent Lightning store",
            "version": __version__,
            "description": (
                "Every LightningStore method as POST /v1/store/<method> with a JSON object of its keyword "
                "arguments. Send an Idempotency-Key header on writes so retries are answered, not re-run; "
                "keys are kept per client (its Agl-Client-Id header and address)."
            ),
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if bearer:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    else:
        del paths["/health"]["get"]["security"]
    return document
