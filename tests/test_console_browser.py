"""The console in a real browser: Debian's chromium driven by Playwright, against a real rApp over a seeded
history and a real Redis (tests/console_seed.py). Every wait is on the page's state; load times are printed,
never asserted."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import jwt
import pandas as pd
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ranomaly_contracts.auth.apikey import read_api_key
from ranomaly_contracts.auth.scopes import READ
from ranomaly_contracts.sdl import CellStatus, sdl_keys
from rapp.console.session import COOKIE
from tests.auth_helpers import app_key, key_header
from tests.console_seed import (
    NEAR_RT_PERIOD_MS,
    OPEN_CELL,
    OPEN_ID,
    PLOT_POINTS,
    NearRt,
    Running,
    cell_state,
    running_near_rt,
    running_rapp,
)
from tests.test_xapp_service import model_folder

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def console(redis_url: str, tmp_path: Path) -> Iterator[Running]:
    with running_rapp(redis_url, tmp_path, console_refresh_s=0.5) as running:
        yield running


def sign_in(page: Page, console: Running, name: str) -> None:
    """Through the sign-in form, with the rApp's generated API key; back on the page asked for."""
    expect(page.locator("#sign-in")).to_be_visible()
    page.fill("#name", name)
    page.fill("#key", read_api_key(console.api_key))
    page.click("#sign-in button")
    expect(page.locator("#signed-in")).to_have_text(f"{name} via api-key")


def timed(page: Page, url: str, what: str) -> None:
    """Open a page; print how long until its load event."""
    began = time.perf_counter()
    page.goto(url, wait_until="load")
    print(f"console page load: {what} {1000 * (time.perf_counter() - began):.0f} ms")  # noqa: T201


def test_an_operator_finds_the_incident_sees_its_plot_and_judges_it(
    browser: Browser, console: Running, redis_url: str
) -> None:
    base = console.base
    page = browser.new_page()
    timed(page, f"{base}/console", "sign-in (no session yet)")
    sign_in(page, console, "alice")
    cookie = next(c for c in page.context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]  # plain HTTP here
    timed(page, f"{base}/console", "network now")
    row = page.locator(f'#open-incidents tr[data-incident="{OPEN_ID}"]')
    expect(row).to_be_visible()
    expect(page.locator('[data-status="anomalous"] b')).to_have_text("1")
    expect(page.locator(f'[data-cell="{OPEN_CELL}"]')).to_have_class("cell anomalous")
    expect(page.locator("#alarm-rate .bars .point path")).to_have_count(24)

    # the view follows the xApp's cell states without a reload
    client = redis.Redis.from_url(redis_url)
    client.hset(sdl_keys(console.prefix).cells, "n2-c2", cell_state("n2-c2", CellStatus.ANOMALOUS))
    client.close()
    expect(page.locator('[data-cell="n2-c2"]')).to_have_class("cell anomalous")

    began = time.perf_counter()
    row.get_by_role("link").click()
    expect(page.locator("#plots")).to_have_attribute("data-drawn", "2")
    print(f"console page load: incident with its plots {1000 * (time.perf_counter() - began):.0f} ms")  # noqa: T201
    assert unquote(page.url).endswith(f"/console/incidents/{OPEN_ID}")
    traces = page.evaluate("document.getElementById('plot-0').data.map(t => [t.name, t.x.length])")
    assert traces == [[name, PLOT_POINTS] for name in ("band low (5 %)", "normal band (5-95 %)", "normal level",
                                                       "DRB.UEThpDl")]  # fmt: skip
    assert page.locator("#plot-0 .scatterlayer .trace").count() == 4
    assert page.locator("#plot-0 .scatterlayer .trace:last-child path.js-line").get_attribute("d")
    expect(page.locator("#written-by")).to_contain_text("template")
    expect(page.locator("#root-cause")).to_contain_text("unclassified")

    page.click("#acknowledge")
    expect(page.locator("#acknowledged")).to_contain_text("by alice via api-key")
    page.select_option("#verdict-choice", "false_alarm")
    page.click("#verdict-form button")
    expect(page.locator("#verdict")).to_contain_text("false alarm, by alice via api-key")
    page.fill("#note", "<script>window.pwned = 1</script> PRB spike")
    page.click("#note-form button")
    expect(page.locator("#notes q")).to_have_text("<script>window.pwned = 1</script> PRB spike")
    assert page.evaluate("window.pwned") is None

    page.reload()
    expect(page.locator("#acknowledged")).to_contain_text("by alice via api-key")
    expect(page.locator("#verdict")).to_contain_text("false alarm")
    export = page.request.get(f"{base}/api/v1/labels.csv?false_alarms=true", headers=key_header(console.api_key))
    labels = pd.read_csv(io.StringIO(export.text()))
    judged = labels[labels["incident_id"] == OPEN_ID]
    assert list(judged[["cell_id", "verdict", "judged_by"]].iloc[0]) == [OPEN_CELL, "false_alarm", "alice via api-key"]
    training = page.request.get(f"{base}/api/v1/labels.csv", headers=key_header(console.api_key)).text()
    assert OPEN_ID not in training  # a false alarm is no anomaly to train on

    timed(page, f"{base}/console/incidents?review=false_alarm", "incidents list")
    expect(page.locator("#incidents tbody tr")).to_have_count(1)
    page.close()


def test_without_a_session_the_console_asks_to_sign_in_and_refuses_forged_changes(
    browser: Browser, console: Running
) -> None:
    base = console.base
    page = browser.new_page()
    page.goto(f"{base}/console/incidents/{OPEN_ID}")
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.request.get(f"{base}/console/api/network").status == 401
    page.fill("#name", "mallory")
    page.fill("#key", "not-the-key")
    page.click("#sign-in button")
    expect(page.locator("#sign-in-error")).to_have_text("That key is not accepted.")
    sign_in(page, console, "bob")
    assert unquote(page.url).endswith(f"/console/incidents/{OPEN_ID}")  # back where the sign-in was asked

    # another site's page posts to the console while bob is signed in: SameSite=Strict keeps the cookie home
    evil = "http://evil.test/"
    form = (f'<form id="f" method="post" action="{base}/console/api/incidents/{OPEN_ID}/acknowledge">'
            '<input name="by" value="x"></form><script>document.getElementById("f").submit()</script>')  # fmt: skip
    page.route(evil, lambda route: route.fulfill(body=form, content_type="text/html"))
    with page.expect_response(lambda r: "/acknowledge" in r.url) as forged:
        page.goto(evil)
    assert forged.value.status == 401
    # the session's own cookie without the page's CSRF token, or from another origin, is refused too
    path = f"{base}/console/api/incidents/{OPEN_ID}/acknowledge"
    assert page.request.post(path, data={}).status == 403
    csrf = page.context.request.get(f"{base}/console").text().split('name="csrf-token" content="')[1].split('"')[0]
    assert page.request.post(path, data={}, headers={"x-csrf-token": csrf, "origin": evil[:-1]}).status == 403
    assert page.request.post(path, data={}, headers={"x-csrf-token": csrf}).status == 200
    page.goto(f"{base}/console")
    page.click(".who button")  # sign out
    expect(page.locator("#sign-in")).to_be_visible()
    assert page.request.get(f"{base}/console/api/network").status == 401
    page.close()


def test_a_read_only_token_signs_in_and_sees_no_acting_controls(
    browser: Browser, tmp_path: Path, redis_url: str
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    now = int(time.time())
    claims = {"iss": "https://issuer.test", "aud": "ranomaly-rapp", "sub": "viewer-7", "iat": now, "exp": now + 300,
              "scope": READ}  # fmt: skip
    token = jwt.encode(claims, key, algorithm="ES256")
    with running_rapp(redis_url, tmp_path / "rapp", auth_issuer="https://issuer.test",
                      auth_public_key_file=pem) as console:  # fmt: skip
        page = browser.new_page()
        page.goto(f"{console.base}/console/incidents/{OPEN_ID}")
        page.fill("#name", "vera")
        page.fill("#key", token)
        page.click("#sign-in button")
        expect(page.locator("#signed-in")).to_have_text("vera via viewer-7")
        expect(page.locator("#plots")).to_have_attribute("data-drawn", "2")
        assert page.locator(".actions").count() == 0 and page.locator("#acknowledge").count() == 0
        csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
        refused = page.request.post(f"{console.base}/console/api/incidents/{OPEN_ID}/acknowledge", data={},
                                    headers={"x-csrf-token": csrf})  # fmt: skip
        assert refused.status == 403 and "read only" in refused.text()
        timed(page, f"{console.base}/console/cells/{OPEN_CELL}?hours=6", "cell page")
        expect(page.locator("#plots")).to_have_attribute("data-drawn", "3")
        assert page.evaluate("document.getElementById('plot-0').data.map(t => t.x.length)") == [360]  # no forecast
        assert page.locator("#plot-0 .shapelayer path").count() >= 1  # the open incident shaded
        expect(page.locator("#cell-incidents a")).to_have_text(OPEN_ID)
        page.goto(f"{console.base}/console/models")
        expect(page.locator("#models-data")).to_have_attribute("data-can-admin", "")
        assert page.locator("#train-form").count() == 0
        refused = page.request.post(f"{console.base}/console/api/jobs/training", data={},
                                    headers={"x-csrf-token": csrf})  # fmt: skip
        assert refused.status == 403
        page.close()


@pytest.fixture
def live(redis_url: str, tmp_path: Path) -> Iterator[tuple[Running, NearRt]]:
    """An rApp whose Near-RT side is a real xApp scoring e2sim's stream into the same data layer."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    with running_near_rt(redis_url, prefix, tmp_path / "near-rt") as near_rt:
        with running_rapp(redis_url, tmp_path / "rapp", prefix=prefix, a1_base_url=near_rt.a1_url,
                          a1_sync_interval_s=0.5, console_refresh_s=0.5, console_silence_check_s=0.2,
                          console_xapp_url=near_rt.a1_url) as console:  # fmt: skip
            yield console, near_rt


def xapp_policy(near_rt: NearRt, policy_id: str) -> httpx.Response:
    """The xApp's own copy of a type-20100 instance (its A1-P endpoint, with its generated key)."""
    headers = app_key(near_rt.xapp.settings)
    return httpx.get(f"{near_rt.a1_url}/A1-P/v2/policytypes/20100/policies/{policy_id}", headers=headers, timeout=10)


def test_a_maintenance_silence_silences_a_node_on_the_xapp_and_expires(
    browser: Browser, live: tuple[Running, NearRt]
) -> None:
    console, near_rt = live
    node, cells = next(iter(near_rt.nodes.items()))
    page = browser.new_page()
    page.goto(f"{console.base}/console")
    sign_in(page, console, "carol")
    for cell in cells:  # the xApp's verdicts reach the page: scored, not silenced
        expect(page.locator(f'[data-cell="{cell}"]')).to_have_class(re.compile(r"cell (normal|warming_up)"),
                                                                      timeout=120_000)  # fmt: skip

    page.select_option("#silence-scope", "node")
    page.fill("#silence-target", node)
    page.fill("#silence-minutes", "30")
    page.click("#silence-form button")
    row = page.locator(f'#silences tr[data-silence="silence.node.{node}"]')
    expect(row).to_contain_text("carol via api-key")
    held = xapp_policy(near_rt, f"silence.node.{node}")
    assert held.status_code == 200 and held.json() == {"enabled": False, "scope": {"nodes": [node]}}
    for cell in cells:  # the xApp scores the node's cells as silenced, the others as before
        expect(page.locator(f'[data-cell="{cell}"]')).to_have_class("cell silenced", timeout=120_000)
    expect(page.locator(f'[data-node="{node}"] .silenced-until')).to_contain_text("silenced until")
    other = next(c for n, cs in near_rt.nodes.items() if n != node for c in cs)
    expect(page.locator(f'[data-cell="{other}"]')).not_to_have_class("cell silenced")
    page.locator(f'[data-cell="{cells[0]}"]').click()  # the cell's page says so too
    expect(page.locator("#cell-status")).to_have_text("silenced")
    expect(page.locator(".silenced-until")).to_contain_text("node silenced until")
    page.go_back()
    expect(row).to_have_count(1)  # the network view drawn again (its script ready)

    # silenced again for a moment: the new expiry replaces the old, and the rApp deletes the policy at it
    page.fill("#silence-target", node)
    page.fill("#silence-minutes", "0.02")
    page.click("#silence-form button")
    expect(row).to_have_count(0, timeout=120_000)
    assert xapp_policy(near_rt, f"silence.node.{node}").status_code == 404
    for cell in cells:
        expect(page.locator(f'[data-cell="{cell}"]')).to_have_class(re.compile(r"cell (normal|warming_up|anomalous)"),
                                                                      timeout=120_000)  # fmt: skip
    page.close()


def test_a_policy_made_in_the_form_reaches_the_xapp_and_a_wrong_value_is_shown_by_its_field(
    browser: Browser, live: tuple[Running, NearRt]
) -> None:
    console, near_rt = live
    node = next(iter(near_rt.nodes))
    page = browser.new_page()
    page.goto(f"{console.base}/console/policies")
    sign_in(page, console, "dave")
    page.click("#new-policy")
    expect(page.locator("#policy-form")).to_have_attribute("data-ready", "20100")
    page.fill("#policy-id", "night-watch")
    page.check("#field-enabled")
    page.fill("#field-scope-nodes", node)
    page.select_option("#field-threshold-mode", "sigma")
    page.fill("#field-threshold-value", "-1")
    page.click("#save")
    expect(page.locator('.field-error[data-error-for="threshold.value"]')).to_contain_text("minimum of 0")
    expect(page.locator('.field-error[data-error-for="scope.nodes"]')).to_have_text("")
    assert xapp_policy(near_rt, "night-watch").status_code == 404, "a refused policy never reaches the xApp"

    page.fill("#field-threshold-value", "4")
    began = time.perf_counter()
    page.click("#save")
    row = page.locator('#policies tr[data-policy="night-watch"]')
    expect(row).to_contain_text(f"node {node}")
    print(f"console page load: policies after a save {1000 * (time.perf_counter() - began):.0f} ms")  # noqa: T201
    expected = {"enabled": True, "scope": {"nodes": [node]}, "threshold": {"mode": "sigma", "value": 4}}
    assert xapp_policy(near_rt, "night-watch").json() == expected
    expect(row.locator(".near-rt-status")).to_have_text("ENFORCED", timeout=120_000)  # the xApp applies it

    row.locator(".edit").click()
    expect(page.locator("#field-threshold-value")).to_have_value("4")
    page.fill("#field-debounce-open_after", "3")
    page.click("#save")
    expect(row).to_be_visible()
    assert xapp_policy(near_rt, "night-watch").json() == {**expected, "debounce": {"open_after": 3}}

    row.locator(".delete").click()
    expect(row).to_have_count(0)
    assert xapp_policy(near_rt, "night-watch").status_code == 404
    page.close()


def test_a_rollback_from_the_models_page_makes_the_xapp_score_the_older_version(
    browser: Browser, live: tuple[Running, NearRt], tmp_path: Path
) -> None:
    console, near_rt = live
    cells = sum(len(c) for c in near_rt.nodes.values())
    newer = model_folder(tmp_path / "newer", "near-rt-2", NEAR_RT_PERIOD_MS)
    asyncio.run_coroutine_threadsafe(console.service.registry.publish(newer), console.loop).result(60)
    page = browser.new_page()
    page.goto(f"{console.base}/console/models")
    sign_in(page, console, "frank")
    old, new = (page.locator(f'#models tr[data-version="{v}"]') for v in ("near-rt-1", "near-rt-2"))
    # the newest promoted version scores (no model policy names one yet)
    expect(new.locator(".cells-scoring")).to_have_text(str(cells), timeout=120_000)
    expect(old.locator(".score")).to_have_text("Roll back")

    old.locator(".score").click()  # a rollback job: signed anew, named in the model policy, enforced on the xApp
    expect(old.locator(".is-named")).to_have_text("yes", timeout=120_000)
    expect(old.locator(".cells-scoring")).to_have_text(str(cells), timeout=120_000)
    expect(new.locator(".cells-scoring")).to_have_text("0")
    expect(page.locator("#models .score")).to_have_count(1)  # only the version not named offers itself
    expect(new.locator(".score")).to_have_text("Promote")
    new.locator(".score").click()  # and forward again
    expect(new.locator(".cells-scoring")).to_have_text(str(cells), timeout=120_000)

    jobs = page.locator('#jobs tr[data-state="succeeded"]')
    expect(jobs).to_have_count(2)
    jobs.first.locator("summary").click()
    expect(jobs.first.locator(".job-log")).to_contain_text("near-rt-2 enforced")  # the newest job first
    page.close()
