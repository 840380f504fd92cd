"""Response models of the policy management API v2 (`/a1-policy/v2`), named and shaped as its spec has them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rapp.a1.policies import PolicyInfo


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class Empty(BaseModel):
    """`void`: an empty object."""


class PolicyTypeIds(BaseModel):
    """`policy_type_id_list`."""

    model_config = _example({"policytype_ids": ["20100"]})
    policytype_ids: list[str]


class PolicyTypeDefinition(BaseModel):
    """`policy_type_definition`: the type's JSON schema (draft-07)."""

    model_config = _example({"policy_schema": {"type": "object", "required": ["enabled"]}})
    policy_schema: dict[str, Any]


class PolicyIds(BaseModel):
    """`policy_id_list`."""

    model_config = _example({"policy_ids": ["quiet-night"]})
    policy_ids: list[str]


class PolicyInfoList(BaseModel):
    """`policy_info_list`."""

    policies: list[PolicyInfo]


class PolicyStatus(BaseModel):
    """`policy_status_info`: the Near-RT RIC's status as it answers it (`enforceStatus`, `enforceReason`, and
    from RANomaly's xApp `warnings` naming what the policy names that it does not know yet)."""

    model_config = _example({"last_modified": "2026-12-07T04:00:00.000Z",
                             "status": {"enforceStatus": "ENFORCED", "enforceReason": ""}})  # fmt: skip
    last_modified: str
    status: dict[str, Any]


class RicInfo(BaseModel):
    """`ric_info`: the Near-RT RIC, its policy types and state."""

    model_config = _example({"ric_id": "ric-1", "managed_element_ids": ["gnb-001"], "state": "AVAILABLE",
                             "policytype_ids": ["20100"]})  # fmt: skip
    ric_id: str
    managed_element_ids: list[str]
    state: Literal["UNAVAILABLE", "AVAILABLE", "SYNCHRONIZING", "CONSISTENCY_CHECK"]
    policytype_ids: list[str]


class RicInfoList(BaseModel):
    """`ric_info_list`."""

    rics: list[RicInfo]


class StatusInfo(BaseModel):
    """`status_info`."""

    model_config = _example({"status": "success"})
    status: str


class ServiceStatus(BaseModel):
    """`service_status`: a registered service and how long it has been silent."""

    model_config = _example({"service_id": "energy-saver", "callback_url": "", "keep_alive_interval_seconds": 60,
                             "time_since_last_activity_seconds": 12})  # fmt: skip
    service_id: str
    callback_url: str
    keep_alive_interval_seconds: int
    time_since_last_activity_seconds: int


class ServiceStatusList(BaseModel):
    """`service_status_list`."""

    service_list: list[ServiceStatus]


class ApplicationConfiguration(BaseModel):
    """The application configuration, as the O-RAN SC service's JSON: `config.ric` holds the one Near-RT RIC."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{"config": {"ric": [
        {"name": "ric-1", "managedElementIds": ["gnb-001"]}]}}]})  # fmt: skip
    config: dict[str, Any] = Field(
        description="`ric`: a list of one {name, baseUrl, managedElementIds}; a PUT may "
        "leave baseUrl out (the rApp's a1_base_url is the only one it takes)"
    )
