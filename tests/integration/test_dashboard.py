"""The dashboard in a real browser: Debian's headless Chromium, driven through Selenium
and the system chromedriver, against a 2-worker cluster. What a person would see:
tasks appear and finish without a reload, a failure shows its error, Retry on a dead
letter runs the task again, a killed worker turns dead, and task data never runs as
script. A screenshot is written to ``tests/.artifacts/`` (not committed)."""

from __future__ import annotations

import os
import shutil
import uuid
from typing import Any, Iterator

import httpx
import pytest

from tests.support.cluster import ROOT
from tests.support.wait import Timeout, wait_for
from yadtq_app import Client

pytestmark = [pytest.mark.integration, pytest.mark.embedded_only]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / ".artifacts"


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium, flags as the machine's notes ask (no background networking)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("YADTQ_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromium-driver are required here (make browser installs them)")
        pytest.skip("no chromium/chromedriver: `make browser` installs Debian's (as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _rows(driver: Any, table: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")


def _task_status(driver: Any, task_id: str) -> Any:
    for tr in _rows(driver, "tasks"):
        if tr.get_attribute("data-task-id") == task_id:
            return tr.get_attribute("data-status")
    return None


def _worker_states(driver: Any) -> dict[str, str]:
    return {tr.get_attribute("data-worker-id"): tr.get_attribute("data-state") for tr in _rows(driver, "workers")}


def _detail_field(driver: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'#detail-fields dd[data-field="{name}"]')
    return found[0].text if found else ""


def test_the_dashboard_shows_a_cluster_at_work(cluster_factory: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    cluster = cluster_factory().start(2)
    cluster.wait_settled(timeout=90)
    first, second = cluster.workers
    client = Client(first.url)
    browser.get(first.url + "/")
    assert browser.title == "yadtq dashboard"
    try:
        wait_for(lambda: _worker_states(browser) == {first.worker_id: "alive", second.worker_id: "alive"}, timeout=60,
                 message="both workers shown alive")
    except Timeout as exc:
        state = httpx.get(first.url + "/dashboard/api/state", timeout=10)
        raise AssertionError(f"page: {browser.find_element(By.ID, 'conn').text} {_worker_states(browser)}; "
                             f"state: {state.status_code} {state.text[:800]}") from exc

    # A task appears and turns success without a reload.
    marker = browser.execute_script("window.__loaded = 'same page'; return window.__loaded")
    ok = client.submit("add", 2, 3)
    wait_for(lambda: _task_status(browser, ok.id) == "success", timeout=30, message="the task shown success")
    assert browser.execute_script("return window.__loaded") == marker

    # A failing task shows its error; it is a dead letter, whose Retry runs it again.
    bad = client.submit("divide", 1, 0, task_id=f"div-{uuid.uuid4().hex[:8]}")
    wait_for(lambda: _task_status(browser, bad.id) == "failed", timeout=30, message="the failure shown")
    browser.find_element(By.CSS_SELECTOR, f'#tasks a[data-task-id="{bad.id}"]').click()
    wait_for(lambda: "ZeroDivisionError" in _detail_field(browser, "error"), timeout=15,
             message="the task's error in its detail")

    def dead_letter_button() -> Any:
        for tr in _rows(browser, "dead"):
            if tr.get_attribute("data-task-id") == bad.id:
                return tr.find_element(By.TAG_NAME, "button")
        return None

    wait_for(dead_letter_button, timeout=30, message="the failed task among the dead letters").click()
    wait_for(lambda: httpx.get(f"{first.url}/tasks/{bad.id}", timeout=5).json()["attempts"] == 2, timeout=30,
             message="the retried task to run again")
    wait_for(lambda: len(_rows(browser, "history")) == 2, timeout=15, message="two attempts in the history")

    # Task data is shown as text, never run as script.
    hostile = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"
    echoed = client.submit("echo", hostile)
    wait_for(lambda: _task_status(browser, echoed.id) == "success", timeout=30, message="the echo task shown")
    browser.find_element(By.CSS_SELECTOR, f'#tasks a[data-task-id="{echoed.id}"]').click()
    # The result is shown as JSON: the markup's own quotes are escaped there.
    wait_for(lambda: "<script>window.__pwned = 1</script><img src=x onerror=" in _detail_field(browser, "result"),
             timeout=15, message="the markup shown as text")
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#detail img, #tasks img, #detail script")

    # Filter by status, search by id.
    select = browser.find_element(By.ID, "status-filter")
    select.find_element(By.CSS_SELECTOR, 'option[value="failed"]').click()
    wait_for(lambda: {tr.get_attribute("data-status") for tr in _rows(browser, "tasks")} == {"failed"}, timeout=15,
             message="only failed tasks listed")
    browser.find_element(By.ID, "search").send_keys(ok.id)
    browser.find_element(By.ID, "search-button").click()
    wait_for(lambda: browser.find_element(By.ID, "detail-id").text == ok.id and
             _detail_field(browser, "result") == "5", timeout=15, message="the searched task's detail")

    # Cancel on a running task.
    slow = client.submit("sleep", 30)
    browser.find_element(By.ID, "search").clear()
    browser.find_element(By.ID, "search").send_keys(slow.id)
    browser.find_element(By.ID, "search-button").click()
    wait_for(lambda: browser.find_element(By.ID, "detail").get_attribute("data-status") == "processing",
             timeout=30, message="the slow task shown processing")
    browser.find_element(By.ID, "cancel-button").click()
    wait_for(lambda: browser.find_element(By.ID, "detail").get_attribute("data-status") == "cancelled",
             timeout=30, message="the cancelled task shown cancelled")
    assert httpx.get(f"{first.url}/tasks/{slow.id}", timeout=5).json()["status"] == "cancelled"

    # A killed worker turns dead; the page goes on.
    second.kill()
    wait_for(lambda: _worker_states(browser).get(second.worker_id) == "dead", timeout=60,
             message="the killed worker shown dead")
    assert _worker_states(browser)[first.worker_id] == "alive"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))


def test_the_dashboard_reconnects_after_its_worker_restarts(cluster_factory: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    cluster = cluster_factory().start(1)
    worker = cluster.workers[0]
    browser.get(worker.url + "/dashboard")
    conn = lambda: browser.find_element(By.ID, "conn").text  # noqa: E731
    wait_for(lambda: conn() == "live", timeout=30, message="the page live")
    worker.stop()
    wait_for(lambda: conn() == "reconnecting…", timeout=30, message="the page to see its worker gone")
    worker.start()
    worker.wait_healthy(90)
    wait_for(lambda: conn() == "live", timeout=60, message="the page live again, without a reload")
    task = Client(worker.url).submit("add", 1, 1)
    wait_for(lambda: _task_status(browser, task.id) == "success", timeout=30, message="a new task shown")


def test_dashboard_files_and_headers(shared_cluster: Any) -> None:
    url = shared_cluster.workers[0].url
    page = httpx.get(url + "/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script src=\"/dashboard/dashboard.js\"" in page.text and "http" not in page.text.split("<body>")[0]
    for asset in ("dashboard.js", "dashboard.css"):
        r = httpx.get(f"{url}/dashboard/{asset}", timeout=10)
        assert r.status_code == 200 and r.content == (ROOT / "yadtq_app" / "dashboard_static" / asset).read_bytes()
    missing = httpx.get(f"{url}/dashboard/..%2Fweb.py", timeout=10)
    assert missing.status_code == 404 and "error" in missing.json()
    bad = httpx.get(f"{url}/dashboard/api/state?status=nope", timeout=10)
    assert bad.status_code == 400 and bad.json()["reason"] == "bad-field"
    # Every worker answers it, whichever holds the workers table (a page loaded from the
    # other one once stayed "reconnecting").
    for w in shared_cluster.workers:
        state = wait_for(lambda w=w: (r := httpx.get(f"{w.url}/dashboard/api/state", timeout=10)).status_code == 200
                         and r.json(), timeout=30, message=f"the dashboard state from worker {w.index}")
        assert {row["id"] for row in state["workers"] if row["alive"]} >= {x.worker_id for x in shared_cluster.workers}
        assert set(state) >= {"workers", "tasks", "lag", "dead_letters"}


def test_artifacts_are_not_committed() -> None:
    assert "tests/.artifacts/" in (ROOT / ".gitignore").read_text().splitlines()

