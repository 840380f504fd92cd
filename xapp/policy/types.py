"""The RANomaly anomaly policy type (A1 policy type 20100): its document, instance schema and extra rules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

POLICY_TYPE_ID = 20100
POLICY_TYPE_NAME = "ranomaly-anomaly-detection"
MODEL_INSTANCE_ID = "ranomaly-model"
"""The rApp's all-cells instance that names the model version; it carries only `enabled` and `model_version`."""
MODEL_INSTANCE_FIELDS = frozenset({"enabled", "model_version"})

THRESHOLD_MODES = ("manifest", "sigma", "quantile")
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
_PERIODS = {"type": "integer", "minimum": 1}

CREATE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "RANomaly anomaly detection policy",
    "type": "object",
    "additionalProperties": False,
    "required": ["enabled"],
    "properties": {
        "enabled": {"type": "boolean", "description": "false silences the scope (maintenance)"},
        "scope": {
            "type": "object",
            "description": "the union of the nodes' cells and the cells; both absent or empty: every cell",
            "additionalProperties": False,
            "properties": {"nodes": _NAMES, "cells": _NAMES},
        },
        "threshold": {
            "type": "object",
            "additionalProperties": False,
            "dependencies": {"value": ["mode"]},
            "properties": {
                "mode": {"enum": list(THRESHOLD_MODES)},
                "value": {"type": "number"},
                "per_measurement": {
                    "type": "object",
                    "description": "absolute thresholds on the model's per-measurement deviation",
                    "propertyNames": {"minLength": 1},
                    "additionalProperties": _POSITIVE,
                },
            },
            "allOf": [
                {
                    "if": {"required": ["mode"], "properties": {"mode": {"const": "sigma"}}},
                    "then": {"required": ["value"], "properties": {"value": _POSITIVE}},
                },
                {
                    "if": {"required": ["mode"], "properties": {"mode": {"const": "quantile"}}},
                    "then": {
                        "required": ["value"],
                        "properties": {"value": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
                    },
                },
            ],
        },
        "debounce": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"open_after": _PERIODS, "close_after": _PERIODS},
        },
        "model_version": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$"},
    },
}
"""Draft-07 schema of a type-20100 instance body."""


def policy_type_document() -> dict[str, Any]:
    """The type-20100 document in the mediator's `policy_type_schema` shape."""
    return {
        "name": POLICY_TYPE_NAME,
        "description": (
            "RANomaly anomaly detection: scope, score threshold (manifest, sigma or quantile), per-measurement "
            "deviation thresholds, debounce and maintenance silencing per cell; the instance "
            f"'{MODEL_INSTANCE_ID}' names the model version"
        ),
        "policy_type_id": POLICY_TYPE_ID,
        "create_schema": CREATE_SCHEMA,
    }


def instance_rule_errors(instance_id: str, body: Mapping[str, Any]) -> list[str]:
    """Violations of the rules the schema cannot say, each naming the field: where `model_version` may appear."""
    if instance_id == MODEL_INSTANCE_ID:
        extra = sorted(set(body) - MODEL_INSTANCE_FIELDS)
        return [f"{field}: instance '{MODEL_INSTANCE_ID}' carries only enabled and model_version" for field in extra]
    if "model_version" in body:
        return [f"model_version: allowed only in instance '{MODEL_INSTANCE_ID}', not in '{instance_id}'"]
    return []
