"""A1 over RMR, as the O-RAN SC A1 mediator speaks it, with its quirks.

- 20010 A1_POLICY_REQ, mediator to xApp: `{"operation": "CREATE"|"UPDATE"|"DELETE", "policy_type_id": ...,
  "policy_instance_id": str, "payload": ...}`. The mediator sends `policy_type_id` as a string and `payload`
  (the instance body) as a JSON string; numbers and objects are accepted too.
- 20011 A1_POLICY_RESP, xApp to mediator: `{"policy_type_id": <number>, "policy_instance_id": str,
  "handler_id": str, "status": "OK"|"ERROR"|"DELETED"}`; the mediator reads the type id as a number.
- 20012 A1_POLICY_QUERY, xApp to mediator at start: `{"policy_type_id": <number>}`; the mediator answers
  with one 20010 CREATE per instance of the type.

Deleting an instance this xApp does not hold is answered DELETED: it is gone, which is what the mediator waits for.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from xapp.policy.handler import A1Handler, check_instance_id, parse_json, parse_type_id
from xapp.policy.store import InvalidPolicy
from xapp.policy.types import POLICY_TYPE_ID

log = structlog.get_logger(__name__)

A1_POLICY_REQ = 20010
A1_POLICY_RESP = 20011
A1_POLICY_QUERY = 20012

STATUS_OK = "OK"
STATUS_ERROR = "ERROR"
STATUS_DELETED = "DELETED"


def encode_policy_query(type_id: int = POLICY_TYPE_ID) -> bytes:
    """The 20012 payload asking the mediator to replay the instances of a type."""
    return json.dumps({"policy_type_id": type_id}).encode()


class A1RmrAdapter:
    """Answers 20010 policy requests through the A1 handler with 20011 replies; never raises."""

    def __init__(self, handler: A1Handler, handler_id: str) -> None:
        self._handler = handler
        self._handler_id = handler_id
        self._malformed = 0

    @property
    def malformed(self) -> int:
        """20010 messages that could not be read as a policy request, since start."""
        return self._malformed

    async def handle_request(self, payload: bytes) -> bytes | None:
        """The 20011 reply to a 20010 payload; None (counted and logged) if the instance cannot be identified."""
        try:
            return await self._handle(payload)
        except Exception:  # the RMR receive loop must survive anything a message can provoke
            self._malformed += 1
            log.exception("a1_rmr_failed", size=len(payload))
            return None

    async def _handle(self, payload: bytes) -> bytes | None:
        try:
            message = parse_json(payload, "message")
            if not isinstance(message, dict):
                raise InvalidPolicy(f"message: must be a JSON object, got {type(message).__name__}")
            type_id = parse_type_id(message.get("policy_type_id"))
            instance_id = check_instance_id(message.get("policy_instance_id"))
        except InvalidPolicy as exc:
            self._malformed += 1
            log.warning("a1_rmr_malformed", error=str(exc), size=len(payload))
            return None
        operation = message.get("operation")
        if operation in ("CREATE", "UPDATE"):
            status = await self._put(type_id, instance_id, message.get("payload"))
        elif operation == "DELETE":
            result = await self._handler.delete_instance(type_id, instance_id)
            status = STATUS_DELETED if result.ok or result.status == 404 else STATUS_ERROR
        else:
            self._malformed += 1
            log.warning("a1_rmr_malformed", error=f"operation: unknown {operation!r}", instance_id=instance_id)
            status = STATUS_ERROR
        return self._reply(type_id, instance_id, status)

    async def _put(self, type_id: int, instance_id: str, body: Any) -> str:
        if isinstance(body, str):
            try:
                body = parse_json(body, "payload")
            except InvalidPolicy as exc:
                self._malformed += 1
                log.warning("a1_rmr_malformed", error=str(exc), type_id=type_id, instance_id=instance_id)
                return STATUS_ERROR
        result = await self._handler.put_instance(type_id, instance_id, body)
        return STATUS_OK if result.ok else STATUS_ERROR

    def _reply(self, type_id: int, instance_id: str, status: str) -> bytes:
        reply = {
            "policy_type_id": type_id,
            "policy_instance_id": instance_id,
            "handler_id": self._handler_id,
            "status": status,
        }
        return json.dumps(reply).encode()
