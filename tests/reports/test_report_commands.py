"""rtccheck report / rtccheck reports: from a state directory (end to end, across a reopen of
the store) and from the relay's HTTP API (a local stand-in that follows the documented shape)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result
from turnkit_testing.report_documents import body, report

from rtccheck.cli import Runtime, main
from turn_relay.reports.store import ReportStore

NOW = 1_700_000_000.0
RUNTIME = Runtime(now=lambda: NOW + 60)


def run(args: list[str], env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(main, args, obj=RUNTIME, env=env or {"RTCCHECK_API_KEY": None})


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def stored(state_dir: Path, *documents: dict[str, Any]) -> list[str]:
    with ReportStore(state_dir) as store:
        return [store.put(body(d), NOW + i) for i, d in enumerate(documents)]


def test_report_json_from_the_state_dir(state_dir: Path) -> None:
    [ident] = stored(state_dir, report())
    outcome = run(["report", ident.lower(), "--state-dir", str(state_dir), "--json"])
    assert outcome.exit_code == 0, outcome.output
    document = json.loads(outcome.stdout)
    assert document["report"] == report()
    assert {k: document[k] for k in ("id", "stored_at", "source", "status")} == {
        "id": ident,
        "stored_at": NOW,
        "source": "browser",
        "status": "pass",
    }


def test_report_table_from_the_state_dir(state_dir: Path) -> None:
    [ident] = stored(state_dir, report(verdict="PASS (1 pass) from the page"))
    outcome = run(["report", ident, "--state-dir", str(state_dir)])
    assert outcome.exit_code == 0, outcome.output
    for shown in (
        ident,
        "Chromium 131 on Linux",
        "relay candidate",
        "relay observed (test t-1)",
        "198.51.100.7:40000",
        "401x1",
        "PASS (1 pass) from the page",
    ):
        assert shown in outcome.output, shown


def test_reports_lists_newest_first(state_dir: Path) -> None:
    idents = stored(state_dir, report(), report(source="peer"), report(source=None))
    outcome = run(["reports", "--state-dir", str(state_dir), "--json", "--limit", "2"])
    assert outcome.exit_code == 0, outcome.output
    listed = json.loads(outcome.stdout)["reports"]
    assert [(r["id"], r["source"]) for r in listed] == [(idents[2], "cli"), (idents[1], "peer")]
    table = run(["reports", "--state-dir", str(state_dir)])
    assert table.exit_code == 0 and "reports (3)" in table.output


def test_unknown_and_malformed_ids(state_dir: Path) -> None:
    stored(state_dir, report())
    unknown = run(["report", "00000000", "--state-dir", str(state_dir)])
    assert unknown.exit_code == 1
    assert f"no report 00000000 in {state_dir}" in unknown.output
    malformed = run(["report", "nope", "--state-dir", str(state_dir)])
    assert malformed.exit_code == 2 and "is not a result id" in malformed.output


def test_a_state_dir_without_a_store(tmp_path: Path) -> None:
    outcome = run(["reports", "--state-dir", str(tmp_path)])
    assert outcome.exit_code == 2
    assert "no report store (reports.sqlite3)" in outcome.output


def test_exactly_one_source_is_needed(state_dir: Path) -> None:
    neither = run(["reports"])
    both = run(["reports", "--state-dir", str(state_dir), "--api", "http://127.0.0.1:1"])
    assert neither.exit_code == both.exit_code == 2
    assert "give either --state-dir DIR or --api URL" in neither.output


# --- the API client against a stand-in -------------------------------------------------------


def stand_in(store: ReportStore, key: str, seen: list[str]) -> web.Application:
    async def one(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != f"Bearer {key}":
            return web.Response(status=401)
        found = store.get(request.match_info["id"], NOW + 60)
        if found is None:
            return web.Response(status=404)
        summary = found.summary.__dict__
        return web.json_response({**summary, "report": found.document})

    async def many(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        limit = int(request.query["limit"])
        return web.json_response({"reports": [s.__dict__ for s in store.list(limit, NOW + 60)]})

    app = web.Application()
    app.router.add_get("/api/reports/{id}", one)
    app.router.add_get("/api/reports", many)
    return app


@pytest.mark.asyncio
async def test_report_and_reports_from_the_api(state_dir: Path, tmp_path: Path) -> None:
    [ident] = stored(state_dir, report())
    key_file = tmp_path / "api.key"
    key_file.write_text("s3cret\n")
    seen: list[str] = []
    with ReportStore(state_dir) as store:
        runner = web.AppRunner(stand_in(store, "s3cret", seen))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        api = f"http://127.0.0.1:{runner.addresses[0][1]}/api"
        try:
            by_file = await asyncio.to_thread(
                run, ["report", ident, "--api", api, "--api-key-file", str(key_file), "--json"]
            )
            by_env = await asyncio.to_thread(
                run, ["reports", "--api", api, "--json"], {"RTCCHECK_API_KEY": "s3cret"}
            )
            no_key = await asyncio.to_thread(run, ["report", ident, "--api", api])
            unknown = await asyncio.to_thread(
                run, ["report", "00000000", "--api", api], {"RTCCHECK_API_KEY": "s3cret"}
            )
        finally:
            await runner.cleanup()
    assert by_file.exit_code == 0, by_file.output
    assert json.loads(by_file.stdout)["report"] == report()
    assert by_env.exit_code == 0, by_env.output
    assert [r["id"] for r in json.loads(by_env.stdout)["reports"]] == [ident]
    assert no_key.exit_code == 2 and "the API key" in no_key.output
    assert unknown.exit_code == 1 and "no report 00000000" in unknown.output
    assert seen == ["Bearer s3cret", "Bearer s3cret", "", "Bearer s3cret"]
