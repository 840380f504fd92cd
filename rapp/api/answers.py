"""The problem+json document (RFC 7807) every rApp route answers an error with, as OpenAPI declares it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

PROBLEM = "application/problem+json"
WHY = {400: "Bad Request: the detail names the field", 401: "Unauthorized: no valid credential",
        403: "Forbidden: a scope is missing", 404: "Not Found", 409: "Conflict", 413: "Content Too Large",
        422: "Unprocessable: the request is valid but cannot be applied", 423: "Locked",
        429: "Too Many Requests", 503: "Service Unavailable: the Near-RT RIC or the data layer"}  # fmt: skip


class Problem(BaseModel):
    """An RFC 7807 problem document (`error_information` in the policy management API)."""

    model_config = {"json_schema_extra": {"examples": [{"status": 404, "title": "Not Found",
                                                        "detail": "policy 'p9' not found"}]}}  # fmt: skip
    status: int = Field(description="the HTTP status")
    title: str = Field(description="the status's name")
    detail: str = Field(description="what is wrong, naming the field or resource")


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries declaring problem answers."""
    schema = {"$ref": "#/components/schemas/Problem"}  # added to the document by install()
    return {s: {"description": WHY.get(s, "Error"), "content": {PROBLEM: {"schema": schema}}} for s in statuses}


BODIES: dict[str, type[BaseModel]] = {}  # models of bodies that routes read themselves (bounded), by name


def body(model: type[BaseModel], required: bool = True) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON body of `model` (a component of the document, added by install())."""
    BODIES[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}
