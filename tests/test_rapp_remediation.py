"""Remediation advice: the table covers exactly the anomaly kinds, ranked, and the rApp serves it (a 404 problem
for an unknown kind), with notifications on in its health."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ranomaly.redis_process import free_port
from ranomaly_contracts.kinds import ANOMALY_KINDS
from rapp.remediation import CONTROL_MAPPING, GENERIC_ADVICE, REMEDIATION, Control, advice, advise
from tests.test_rapp_policies import Rapp, rapp_settings

# the lever that addresses each kind's signature first
FIRST_CONTROL = {
    "congestion": Control.TRAFFIC_STEERING,
    "interference": Control.INTERFERENCE_MITIGATION,
    "outage": Control.CELL_RECOVERY,
    "ho_failure": Control.HANDOVER_PARAMETERS,
    "transport": Control.TRANSPORT_CHECK,
    "degradation": Control.FIELD_ESCALATION,
    "stuck_counter": Control.E2_REPORTING_RESET,
    "silent": Control.E2_REPORTING_RESET,
}


def test_the_table_covers_exactly_the_anomaly_kinds() -> None:
    assert sorted(REMEDIATION) == sorted(ANOMALY_KINDS) == sorted(FIRST_CONTROL)
    assert set(CONTROL_MAPPING) == set(Control)


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_each_kind_has_ranked_grounded_actions(kind: str) -> None:
    actions = advice(kind)
    assert len(actions) >= 2
    confidences = [action.confidence for action in actions]
    assert all(0 < c <= 1 for c in confidences)
    assert confidences == sorted(confidences, reverse=True) and len(set(confidences)) == len(confidences)
    assert actions[0].control is FIRST_CONTROL[kind]
    assert all(action.title and len(action.rationale) > 40 for action in actions)


def test_action_ids_are_unique_words() -> None:
    ids = [action.id for actions in REMEDIATION.values() for action in actions] + [a.id for a in GENERIC_ADVICE]
    assert len(ids) == len(set(ids))
    assert all(i.replace("_", "").isalnum() and i == i.lower() for i in ids)


def test_an_unknown_kind_gets_the_generic_escalation_list_flagged() -> None:
    known = advise("ho_failure")
    assert known.known and known.actions[0].id == "tune_handover_parameters"
    for kind in (None, "alien_invasion"):
        generic = advise(kind)
        assert (generic.kind, generic.known, generic.actions) == (kind, False, GENERIC_ADVICE)
        assert all(action.control is Control.FIELD_ESCALATION for action in generic.actions)
    with pytest.raises(KeyError, match="alien_invasion.*congestion, interference"):
        advice("alien_invasion")


async def test_the_rapp_serves_the_advice_and_a_problem_for_unknown_kinds(redis_url: str, tmp_path: Path) -> None:
    settings = rapp_settings(redis_url, free_port(), work_dir=tmp_path / "work", history_dir=tmp_path / "history",
                             noc_webhook_url=f"http://127.0.0.1:{free_port()}/hook")  # fmt: skip
    rapp = Rapp(settings, f"test-{uuid.uuid4().hex[:8]}")
    try:
        every = await rapp.call("GET", "/api/v1/remediation")
        assert every.status_code == 200
        body = every.json()
        assert body["automatic"] is False and sorted(body["kinds"]) == sorted(ANOMALY_KINDS)
        for kind, actions in body["kinds"].items():
            assert [a["id"] for a in actions] == [a.id for a in advice(kind)]
            assert [a["rank"] for a in actions] == list(range(1, len(actions) + 1))

        one = await rapp.call("GET", "/api/v1/remediation/transport")
        assert one.status_code == 200
        first = one.json()["actions"][0]
        assert (first["rank"], first["id"], first["control"]) == (1, "check_backhaul", "transport_check")
        assert first["oran_control"] == CONTROL_MAPPING[Control.TRANSPORT_CHECK] and first["confidence"] == 0.85

        missing = await rapp.call("GET", "/api/v1/remediation/alien_invasion")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        problem = missing.json()
        assert (problem["status"], problem["title"]) == (404, "Not Found")
        assert "'alien_invasion'" in problem["detail"] and all(kind in problem["detail"] for kind in ANOMALY_KINDS)

        docs = (await rapp.call("GET", "/openapi.json")).json()["paths"]["/api/v1/remediation/{kind}"]["get"]
        assert "nothing is executed automatically" in docs["description"]
        health = (await rapp.call("GET", "/healthz")).json()["noc_notifications"]
        assert health["enabled"] is True and health["pending"] == 0
    finally:
        await rapp.stop()
    assert (tmp_path / "work" / "noc-notifications.sqlite3").is_file()
