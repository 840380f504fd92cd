"""The rApp's policy management API v2 beyond the policies: service registration, keep-alive and the removal of
an expired service's policies, the Near-RT RIC, policy instances, status and configuration, against a real
xApp's A1-P endpoint and a real Redis on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from rapp.a1.client import A1Client
from rapp.a1.credentials import ApiKeyFile
from rapp.a1.policies import PolicyInfo, PolicyRegistry
from rapp.a1.services import ServiceRegistration, ServiceRegistry, ServiceSupervision
from tests import test_rapp_policies
from tests.test_rapp_policies import Rapp, policy, rapp_settings
from tests.test_xapp_service import Running, until

key, near_rt = test_rapp_policies.key, test_rapp_policies.near_rt  # their fixtures, here too

V2 = "/a1-policy/v2"


async def held(xapp: Running, policy_id: str) -> bool:
    """Whether the Near-RT side holds the policy."""
    return (await xapp.http("GET", f"/A1-P/v2/policytypes/20100/policies/{policy_id}")).status_code == 200


async def test_a_service_registers_keeps_alive_and_deregistering_deletes_its_policies(
    redis_url: str, key: str, near_rt: tuple[Running, int]
) -> None:
    xapp, port = near_rt
    rapp = Rapp(rapp_settings(redis_url, port), key)
    try:
        saver = {"service_id": "saver", "keep_alive_interval_seconds": 0, "callback_url": "http://saver/ric"}
        assert (await rapp.call("PUT", f"{V2}/services", saver)).status_code == 201
        assert (await rapp.call("PUT", f"{V2}/services", saver)).status_code == 200, "a second put updates"
        listed = (await rapp.call("GET", f"{V2}/services")).json()["service_list"]
        assert [(s["service_id"], s["callback_url"], s["keep_alive_interval_seconds"]) for s in listed] == [
            ("saver", "http://saver/ric", 0)
        ]
        assert (await rapp.call("GET", f"{V2}/services?service_id=other")).status_code == 404
        assert (await rapp.call("PUT", f"{V2}/services/saver/keepalive")).status_code == 200
        assert (await rapp.call("PUT", f"{V2}/services/other/keepalive")).status_code == 404
        assert (await rapp.call("PUT", f"{V2}/services", {"keep_alive_interval_seconds": 5})).status_code == 400
        for pid, owner in (("mine", "saver"), ("theirs", "")):
            assert (await rapp.call("PUT", f"{V2}/policies", policy(pid, service_id=owner))).status_code == 201
        assert (await rapp.call("DELETE", f"{V2}/services/saver")).status_code == 204
        assert not await held(xapp, "mine") and await held(xapp, "theirs"), "only the service's policy is deleted"
        assert (await rapp.call("GET", f"{V2}/policies")).json() == {"policy_ids": ["theirs"]}
        assert (await rapp.call("DELETE", f"{V2}/services/saver")).status_code == 404
    finally:
        await rapp.stop()


def test_a_registration_is_refused_as_the_o_ran_sc_service_refuses_it_and_60_0_is_an_integer() -> None:
    """As the PMS's v2 ServiceController.validateRegistrationInfo: an empty service id and a negative interval are
    refused. 60.0 is an integer to JSON Schema, as the document declares the interval; 1.5 and "60" are not."""

    def registration(**fields: object) -> ServiceRegistration:
        return ServiceRegistration.model_validate({"service_id": "saver", **fields})

    interval = registration(keep_alive_interval_seconds=60.0).keep_alive_interval_seconds
    assert interval == 60 and type(interval) is int
    for refused in ({"service_id": ""}, *({"keep_alive_interval_seconds": v} for v in (-1, -1.0, 1.5, "60", True))):
        with pytest.raises(ValidationError):
            registration(**refused)


async def test_an_expired_service_loses_its_policies_and_an_unsupervised_one_keeps_them(
    redis_url: str, key: str, near_rt: tuple[Running, int]
) -> None:
    xapp, port = near_rt
    rapp = Rapp(rapp_settings(redis_url, port, service_check_interval_s=0.1), key)
    try:
        for service_id, interval in (("brief", 1), ("steady", 0)):
            registration = {"service_id": service_id, "keep_alive_interval_seconds": interval}
            assert (await rapp.call("PUT", f"{V2}/services", registration)).status_code == 201
            body = policy(f"{service_id}-p", service_id=service_id)
            assert (await rapp.call("PUT", f"{V2}/policies", body)).status_code == 201
        await until(lambda: rapp.service.supervision.removed == 1, timeout_s=30, what="the silent service removed")
        assert not await held(xapp, "brief-p") and await held(xapp, "steady-p")
        listed = (await rapp.call("GET", f"{V2}/services")).json()["service_list"]
        assert [s["service_id"] for s in listed] == ["steady"]
        assert (await rapp.call("GET", f"{V2}/policies")).json() == {"policy_ids": ["steady-p"]}
    finally:
        await rapp.stop()


async def test_a_sweep_deletes_a_bounded_number_of_policies_and_a_keepalive_holds_expiry_off(
    redis_url: str, key: str, near_rt: tuple[Running, int], xapp_state_dir: Path
) -> None:
    xapp, port = near_rt
    client = A1Client(f"http://127.0.0.1:{port}", retries=1, auth=ApiKeyFile(xapp_state_dir / "api-key"))
    redis = aioredis.Redis.from_url(redis_url)
    now = [1000.0]
    policies = PolicyRegistry(client, redis, f"{key}:policies", "ric-1")
    services = ServiceRegistry(redis, f"{key}:services", clock=lambda: now[0])
    supervision = ServiceSupervision(services, policies, interval_s=1.0, batch=2)
    try:
        await services.put(ServiceRegistration(service_id="many", keep_alive_interval_seconds=10))
        for n in range(5):
            await policies.put(PolicyInfo(**policy(f"m{n}", service_id="many")))
        now[0] += 9
        await services.keepalive("many")
        now[0] += 9
        assert await supervision.sweep() == 0 and services.expired() == [], "the keep-alive restarted its timer"
        now[0] += 2
        assert services.expired() == ["many"]
        assert await supervision.sweep() == 2 and len(policies.ids(service_id="many")) == 3
        assert [s["service_id"] for s in services.status()] == ["many"], "registered until its policies are gone"
        assert await supervision.sweep() == 2 and await supervision.sweep() == 1
        assert services.status() == [] and supervision.removed == 1
        assert not any([await held(xapp, f"m{n}") for n in range(5)])
        reloaded = ServiceRegistry(redis, f"{key}:services")
        await reloaded.load()
        assert reloaded.status() == [], "the deregistration is stored"
    finally:
        await client.close()
        await redis.aclose()


async def test_the_near_rt_ric_its_configuration_instances_and_status(
    redis_url: str, key: str, near_rt: tuple[Running, int]
) -> None:
    _, port = near_rt
    settings = rapp_settings(redis_url, port, managed_element_ids=("gnb-001",))
    rapp = Rapp(settings, key)
    try:
        await until(lambda: rapp.service.near_rt_available and rapp.service.loaded, what="the RIC available")
        rics = (await rapp.call("GET", f"{V2}/rics")).json()["rics"]
        assert rics == [{"ric_id": "ric-1", "managed_element_ids": ["gnb-001"], "state": "AVAILABLE",
                         "policytype_ids": ["20100"]}]  # fmt: skip
        assert (await rapp.call("GET", f"{V2}/rics?policytype_id=20100")).json()["rics"] == rics
        assert (await rapp.call("GET", f"{V2}/rics?policytype_id=7")).status_code == 404
        assert (await rapp.call("GET", f"{V2}/rics/ric?ric_id=ric-1")).json() == rics[0]
        assert (await rapp.call("GET", f"{V2}/rics/ric?managed_element_id=gnb-001")).json() == rics[0]
        for query in ("", "?ric_id=ric-9", "?managed_element_id=gnb-404"):
            assert (await rapp.call("GET", f"{V2}/rics/ric{query}")).status_code == 404, query

        config = (await rapp.call("GET", f"{V2}/configuration")).json()
        assert config["config"]["ric"] == [
            {"name": "ric-1", "baseUrl": f"http://127.0.0.1:{port}", "managedElementIds": ["gnb-001"]}
        ]
        config["config"]["ric"][0]["managedElementIds"] = ["gnb-002", "gnb-003"]
        config["config"]["controller"] = []
        assert (await rapp.call("PUT", f"{V2}/configuration", config)).status_code == 200
        assert (await rapp.call("GET", f"{V2}/rics/ric?managed_element_id=gnb-003")).status_code == 200
        assert (await rapp.call("GET", f"{V2}/rics/ric?managed_element_id=gnb-001")).status_code == 404
        renamed = {"config": {"ric": [{**config["config"]["ric"][0], "name": "ric-9"}]}}
        for bad, named in ((renamed, "name"), ({"config": {"ric": []}}, "config.ric"), ([], "config")):
            refused = await rapp.call("PUT", f"{V2}/configuration", bad)
            assert refused.status_code == 400 and named in refused.json()["detail"], refused.text

        assert (await rapp.call("PUT", f"{V2}/policies", policy("p1", service_id="saver"))).status_code == 201
        stored = (await rapp.call("GET", f"{V2}/policies/p1")).json()
        assert None not in stored.values() and stored["status_notification_uri"] == "", "never null"
        status = (await rapp.call("GET", f"{V2}/policies/p1/status")).json()["status"]
        assert any("gnb-001" in w for w in status["warnings"]), "the xApp reports no node gnb-001: its status says so"
        instances = (await rapp.call("GET", f"{V2}/policy-instances?service_id=saver")).json()["policies"]
        assert instances == [stored]
        assert (await rapp.call("GET", f"{V2}/policy-instances?service_id=other")).json() == {"policies": []}
        for query in ("ric_id=ric-9", "policytype_id=4711"):
            assert (await rapp.call("GET", f"{V2}/policy-instances?{query}")).status_code == 404, query
            assert (await rapp.call("GET", f"{V2}/policies?{query}")).status_code == 404, query
        assert (await rapp.call("GET", f"{V2}/status")).json() == {"status": "success"}
        assert (await rapp.call("GET", "/status")).text == "success"

        wrong = await rapp.call("POST", f"{V2}/policies")
        assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) >= {"GET", "PUT"}
        wrong = await rapp.call("PATCH", f"{V2}/policies/p1")
        assert wrong.status_code == 405 and set(wrong.headers["allow"].split(", ")) >= {"GET", "DELETE"}
        assert wrong.headers["content-type"] == "application/problem+json"
    finally:
        await rapp.stop()

    again = Rapp(settings, key)
    try:
        kept = (await again.call("GET", f"{V2}/configuration")).json()["config"]
        assert kept["ric"][0]["managedElementIds"] == ["gnb-002", "gnb-003"] and kept["controller"] == []
    finally:
        await again.stop()
