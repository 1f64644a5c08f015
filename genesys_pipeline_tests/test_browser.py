"""The local operating mode, driven from the Dagster UI in a real browser.

`local_mode()` (what `make dev` runs) starts the Genesys emulator, moto, fakesnow and `dagster dev` on free
ports; headless Chromium (Debian's, at /usr/bin/chromium, driven by Playwright for Python) then, as a
person would: materializes one day from the asset graph's launch dialog, launches a three-day backfill
from the same dialog, waits for both, and reads on the pages that they succeeded and that the blocking
row-count check passed for every day. The screenshots it takes are the README's (docs/screenshots/).

Waiting uses the GraphQL API (a run or backfill is done); every assertion reads the page.
Needs Chromium: `apt-get install -y --no-install-recommends chromium` (.ci/run installs it). The test
FAILS without it rather than skipping: a skipped browser test would pass CI without testing anything.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from genesys_pipeline.local.dev import LocalMode, cli_recipes
from genesys_pipeline.local.processes import graphql

CHROMIUM = os.environ.get("GENESYS_CHROMIUM", "/usr/bin/chromium")
# Chromium as root (no sandbox), without a GPU, on a machine whose network is closed: no background
# connections (each would be refused), no QUIC, no first-run or sync work.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
VIEWPORT, GRAPH_VIEWPORT = {"width": 1600, "height": 900}, {"width": 1600, "height": 600}

CHECK_ASSET, CHECK_NAME = "snowflake_conversations", "row_counts_match_across_stages"
STARTUP_SECONDS, RUN_SECONDS, BACKFILL_SECONDS = 150, 180, 240
UI_SECONDS = 30  # one page or dialog to show what it should
RECIPE_SECONDS = 420  # the three command-line launches (four days) to end

pytestmark = pytest.mark.timeout(STARTUP_SECONDS + RUN_SECONDS + BACKFILL_SECONDS + RECIPE_SECONDS + 200)


def _require_browser() -> Any:
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: this browser test needs Debian's chromium. Install it with "
            "`apt-get install -y --no-install-recommends chromium` (.ci/run does this in CI), or point "
            "GENESYS_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("Playwright for Python is not installed: pip install -e '.[dev]'", pytrace=False)
    return sync_api


@contextlib.contextmanager
def _local_mode(tmp_path: Path) -> Iterator[LocalMode]:
    """The local mode (what `make dev` runs) on free ports with its data under tmp_path; its output goes
    to a log file, whose end is printed (and shown by pytest) when something failed."""
    log_path = tmp_path / "local_mode.log"
    try:
        with LocalMode(0, 200, tmp_path / "data", 0, s3_port=0, snowflake_port=0, log_path=log_path,
                       startup_timeout=STARTUP_SECONDS) as mode:  # fmt: skip
            yield mode
    except BaseException:
        if log_path.exists():
            tail = log_path.read_text(errors="replace").splitlines()[-60:]
            print(f"----- last lines of {log_path}\n" + "\n".join(tail))
        raise


@pytest.mark.browser
@pytest.mark.slow
def test_ui_materializes_a_day_and_backfills_three_days_with_passing_checks(tmp_path: Path) -> None:
    sync_api = _require_browser()  # before anything is started: fail at once without a browser
    with _local_mode(tmp_path) as mode:
        _drive_the_ui(sync_api, mode.url, tmp_path)
        _run_the_printed_command_line_recipes(mode)
    # What `make dev` printed while the runs ran: the runs' INFO lines, none of the DEBUG event lines or
    # the stand-ins' chatter (`--verbose` shows those).
    printed = (tmp_path / "local_mode.log").read_text(errors="replace")
    assert "raw_conversations - " in printed
    assert " - DEBUG - " not in printed and "Unsupported property" not in printed and "Warning:" not in printed
    left = _processes_mentioning(str(tmp_path))
    assert not left, f"processes of the local mode still running after it stopped: {left}"


def _drive_the_ui(sync_api: Any, ui_url: str, tmp_path: Path) -> None:
    expect = sync_api.expect
    expect.set_options(timeout=UI_SECONDS * 1000)
    today = datetime.now(timezone.utc).date()
    single_day = _key(today - timedelta(days=2))
    backfill_days = [_key(today - timedelta(days=back)) for back in (5, 4, 3)]
    location, group = _location_and_group(ui_url, CHECK_ASSET)
    group_page = f"{ui_url}/locations/{location}/asset-groups/{group}"
    # What the "Skip" of Dagster's one-off "Join the Dagster community" dialog does. That dialog opens
    # when it likes, over other dialogs too, and then swallows the clicks meant for them.
    assert graphql(ui_url, "mutation { setNuxSeen }")["setNuxSeen"] is True

    with sync_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT
        )
        page = browser.new_page()
        try:
            # The asset graph of the conversations group: all four stages, the check on the last.
            page.goto(group_page)
            for asset in ("raw_conversations", "flattened_conversations", "s3_conversations", CHECK_ASSET):
                expect(page.get_by_text(asset, exact=True).filter(visible=True).first).to_be_visible()

            # One day: Materialize all -> that partition in the launch dialog -> Launch 1 run.
            dialog = _open_launch_dialog(page, expect)
            _select_partitions(dialog, single_day, "1 partition", expect)
            dialog.get_by_role("button", name="Launch 1 run").click()
            run_id = _toast_target(page, "Launched run", expect).removeprefix("/runs/")
            _wait_for(
                lambda: _run_status(ui_url, run_id), {"SUCCESS", "FAILURE", "CANCELED"}, RUN_SECONDS, f"run {run_id}"
            )
            page.goto(f"{ui_url}/runs/{run_id}")
            expect(page.get_by_text(f"partition: {single_day}")).to_be_visible()
            expect(page.get_by_text("Success", exact=True).first, f"run {run_id} shown as a success").to_be_visible(
                timeout=60_000
            )

            # Three days: the same dialog with a range -> Launch backfill (the daemon runs it).
            page.goto(group_page)
            dialog = _open_launch_dialog(page, expect)
            _select_partitions(dialog, f"[{backfill_days[0]}...{backfill_days[-1]}]", "3 partitions", expect)
            dialog.get_by_role("button", name="Launch backfill").click()
            backfill_id = _toast_target(page, "Created backfill", expect).removeprefix("/runs/b/").split("?")[0]
            ended = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
            _wait_for(lambda: _backfill_status(ui_url, backfill_id), ended, BACKFILL_SECONDS, f"backfill {backfill_id}")
            page.goto(f"{ui_url}/runs/b/{backfill_id}")
            expect(_detail(page, "Partition selection")).to_have_text(
                re.compile(rf"{backfill_days[0]}(\.\.\.|…){backfill_days[-1]}")
            )
            expect(_detail(page, "Status"), f"backfill {backfill_id}").to_have_text("Succeeded", timeout=60_000)
            for asset in ("raw_conversations", "flattened_conversations", "s3_conversations", CHECK_ASSET):
                row = page.locator("[class*='VirtualizedTable_row']").filter(
                    has=page.locator(f"a[href='/assets/{asset}']")
                )
                # partitions targeted, in progress, succeeded, failed
                expect(row, asset).to_have_text(re.compile(r"100% completed\s*3\s*0\s*3\s*0$"))

            # The check's execution history: every day passed with a row of its own (the backfill's days
            # too), nothing failed. The asset has two checks; the URL selects this one.
            page.goto(f"{ui_url}/assets/{CHECK_ASSET}?view=checks&checkDetail={CHECK_NAME}")
            expect(page.get_by_text(CHECK_NAME, exact=True).filter(visible=True).first).to_be_visible()
            page.get_by_text("Execution history", exact=True).click()
            table = page.get_by_role("table").filter(has_text="Evaluation result")
            expect(table.get_by_text("Passed", exact=True).first).to_be_visible()
            expect(table.get_by_text(backfill_days[-1], exact=True).first).to_be_visible()  # the backfill's rows rendered
            rows = _table_rows(table)
            failed = [row for row in rows if "fail" in row.get("Evaluation result", "").lower()]
            assert not failed, f"failed check evaluations on the page: {failed}"
            for day in [single_day, *backfill_days]:
                assert any(_passed_for(row, day) for row in rows), f"no passed check for {day} on the page: {rows}"
            page.screenshot(path=str(_screenshot("check-results.png")))

            # The asset graph again, now with what the runs left on it (a wide shot: the graph is one row).
            page.set_viewport_size(GRAPH_VIEWPORT)
            page.goto(group_page)
            node = page.get_by_text(CHECK_ASSET, exact=True).filter(visible=True).first
            expect(node).to_be_visible()
            expect(page.get_by_text("Never materialized")).to_have_count(0)
            page.wait_for_timeout(1000)  # the graph's fit-to-view animation
            page.screenshot(path=str(_screenshot("asset-graph.png")))
        except BaseException:
            with_page = tmp_path / "failure.png"
            page.screenshot(path=str(with_page))
            print(f"page {page.url} at the failure: {with_page}")
            raise
        finally:
            browser.close()


# ##### UI STEPS


def _run_the_printed_command_line_recipes(mode: LocalMode) -> None:
    """The commands `make dev` prints, run as a user pastes them in another terminal: a day, a range of
    two days (one run) and a one-day backfill, days the UI part did not touch; each run must succeed
    under the daemon with its check passed (a run the daemon cannot place fails at once)."""
    first = datetime.now(timezone.utc).date() - timedelta(days=12)
    recipes = cli_recipes(mode, first, backfill_days=1)
    for label, command in recipes.items():
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{label}: {command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    expected = {_key(first), _key(first + timedelta(days=1)), _key(first + timedelta(days=3))}  # runs' first days
    deadline = time.monotonic() + RECIPE_SECONDS
    while True:
        runs = _runs_by_first_day(mode.url)
        if set(expected) <= set(runs) and all(runs[day] in ("SUCCESS", "FAILURE", "CANCELED") for day in expected):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"the command-line runs did not end within {RECIPE_SECONDS} s: {runs}")
        time.sleep(2)
    assert {day: runs[day] for day in expected} == dict.fromkeys(expected, "SUCCESS"), runs
    checks = graphql(mode.url, """query($key: AssetKeyInput!, $name: String!) { assetCheckExecutions(
        assetKey: $key, checkName: $name, limit: 50) { status partition } }""",
        {"key": {"path": [CHECK_ASSET]}, "name": CHECK_NAME})["assetCheckExecutions"]  # fmt: skip
    passed = {run["partition"] for run in checks if run["status"] == "SUCCEEDED"}
    wanted = {_key(first + timedelta(days=back)) for back in range(4)}
    assert wanted <= passed, f"check not passed for {sorted(wanted - passed)}: {checks}"


def _runs_by_first_day(url: str) -> dict[str, str]:
    """Each run's status by the first day it covers (a single day's, or a range's start)."""
    data = graphql(url, "{ runsOrError(limit: 30) { ... on Runs { results { status tags { key value } } } } }")
    runs = {}
    for run in data["runsOrError"]["results"]:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        day = tags.get("dagster/partition") or tags.get("dagster/asset_partition_range_start")
        if day:
            runs.setdefault(day, run["status"])
    return runs


def _open_launch_dialog(page: Any, expect: Any) -> Any:
    page.get_by_role("button", name=re.compile(r"Materialize all")).click()
    dialog = page.get_by_role("dialog").filter(has_text="Launch runs to materialize")
    expect(dialog).to_be_visible()
    return dialog


def _select_partitions(dialog: Any, text: str, expected_count: str, expect: Any) -> None:
    """Type a key or a `[start...end]` range into the dialog's partition box, as the UI suggests."""
    box = dialog.get_by_role("textbox").first
    box.fill(text)
    box.press("Enter")
    expect(dialog.get_by_text(expected_count, exact=True)).to_be_visible()


def _toast_target(page: Any, text: str, expect: Any) -> str:
    """The link of the toast the UI shows after a launch ("Launched run 1a2b3c4d  View")."""
    toast = page.get_by_text(text)
    expect(toast).to_be_visible()
    link = page.get_by_role("link", name="View", exact=True)
    return link.get_attribute("href")


def _detail(page: Any, label: str) -> Any:
    """The value under a label of the backfill page's overview ("Status", "Partition selection")."""
    return page.get_by_text(label, exact=True).locator("xpath=following-sibling::*[1]")


def _table_rows(table: Any) -> list[dict[str, str]]:
    headers = [" ".join(cell.split()) for cell in table.get_by_role("columnheader").all_inner_texts()]
    rows = []
    for row in table.get_by_role("row").all()[1:]:
        cells = [" ".join(cell.split()) for cell in row.get_by_role("cell").all_inner_texts()]
        if cells:
            rows.append(dict(zip(headers, cells, strict=False)))
    return rows


def _passed_for(row: dict[str, str], day: str) -> bool:
    """A passed evaluation recorded against `day`'s own partition: a single-day run's result, or the
    day's own result inside a backfill run of several days."""
    return row.get("Evaluation result") == "Passed" and row.get("Partition") == day


def _screenshot(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / name


# ##### WAITING (GraphQL) AND PLUMBING


def _wait_for(status: Any, ended: set[str], seconds: float, what: str) -> str:
    deadline, current = time.monotonic() + seconds, "?"
    while time.monotonic() < deadline:
        current = status()
        if current in ended:
            return current
        time.sleep(2)
    pytest.fail(f"{what} still {current} after {seconds} s")


def _run_status(url: str, run_id: str) -> str:
    data = graphql(url, "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id})
    return data["runOrError"].get("status", "?")


def _backfill_status(url: str, backfill_id: str) -> str:
    query = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"
    return graphql(url, query, {"id": backfill_id})["partitionBackfillOrError"].get("status", "?")


def _location_and_group(url: str, asset: str) -> tuple[str, str]:
    query = """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) {
        ... on AssetNode { groupName repository { location { name } } } } }"""
    node = graphql(url, query, {"key": {"path": [asset]}})["assetNodeOrError"]
    return node["repository"]["location"]["name"], node["groupName"]


def _key(day: date) -> str:
    return day.isoformat()


def _processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment contains `text` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if stat[stat.rindex(")") + 2] == "Z":
                continue
            blob = Path(f"/proc/{entry}/cmdline").read_bytes() + Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if text.encode() in blob:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()[:200].replace(b"\0", b" ")
            found.append(f"{entry}: {command.decode(errors='replace')}")
    return found
