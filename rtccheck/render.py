"""Terminal output: progress while checks run, a table per check family, a one-line verdict.

The only module that imports rich. Progress goes to stderr: a live spinner on a terminal,
plain lines otherwise (and always with --json, whose document alone goes to stdout).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from rtccheck.results import (
    CheckResult,
    JsonValue,
    Metric,
    Report,
    RequirementOutcome,
    Status,
)
from rtccheck.runner import ProgressSink
from rtccheck.timefmt import utc_text

STATUS_STYLE = {
    Status.PASS: ("✔ pass", "green"),
    Status.WARN: ("! warn", "yellow"),
    Status.FAIL: ("✘ fail", "bold red"),
    Status.SKIP: ("- skip", "dim"),
}


def tally(results: Sequence[CheckResult]) -> str:
    counts = {status: sum(r.status is status for r in results) for status in Status}
    return ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "no results"


class PlainProgress:
    """One line per finished family, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def started(self, family: str) -> None:
        return None

    def finished(self, family: str, results: Sequence[CheckResult]) -> None:
        print(f"rtccheck: {family}: {tally(results)}", file=self.stream, flush=True)


class LiveProgress:
    """A spinner per family on a terminal; it disappears when the report is drawn."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def started(self, family: str) -> None:
        self.tasks[family] = self.progress.add_task(f"{family}: running", total=1)

    def finished(self, family: str, results: Sequence[CheckResult]) -> None:
        task = self.tasks.get(family)
        if task is not None:
            self.progress.update(task, completed=1, description=f"{family}: {tally(results)}")


@contextmanager
def progress_display(json_output: bool, stream: TextIO | None = None) -> Iterator[ProgressSink]:
    """Live progress on a terminal, plain lines when not a terminal or with --json."""
    target = stream if stream is not None else sys.stderr
    if json_output or not target.isatty():
        yield PlainProgress(target)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=target), transient=True) as progress:
        yield LiveProgress(progress)


PIPE_WIDTH = 120


def make_console(file: TextIO | None = None, width: int | None = None) -> Console:
    """A console for the report; into a pipe or a log it is 120 columns, not rich's 80."""
    target = file if file is not None else sys.stdout
    if width is None and not target.isatty():
        width = PIPE_WIDTH
    return Console(file=file, width=width, highlight=False, soft_wrap=False)


def render_report(report: Report, console: Console) -> None:
    """Tables per family, causes and fixes under them, requirements, then the verdict."""
    families = list(dict.fromkeys([*report.checks_run, *(r.family for r in report.results)]))
    for family in families:
        results = [r for r in report.results if r.family == family]
        if results:
            console.print(family_table(family, results))
            _print_candidates(results, console)
            _print_explanations(results, console)
    if report.requirements:
        console.print(requirements_table(report.requirements))
    console.print(verdict_text(report))


def family_table(family: str, results: Sequence[CheckResult]) -> Table:
    table = Table(title=family, title_justify="left", title_style="bold", expand=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("target", overflow="fold", ratio=2)
    table.add_column("result", overflow="fold", ratio=4)
    table.add_column("figures", overflow="fold", ratio=2)
    for result in results:
        label, style = STATUS_STYLE[result.status]
        table.add_row(
            Text(label, style=style),
            result.check.removeprefix(f"{family}.") or result.check,
            result.target,
            result.summary,
            "\n".join(metric_lines(result.metrics)),
        )
    return table


def metric_lines(metrics: dict[str, Metric]) -> list[str]:
    """``key=value`` per metric, values kept whole (``classic_name=open internet``)."""
    return [f"{key}={_figure(value)}" for key, value in metrics.items() if value is not None]


def format_metrics(metrics: dict[str, Metric]) -> str:
    return " ".join(metric_lines(metrics))


def _figure(value: Metric) -> str:
    if not isinstance(value, float):
        return str(value)
    if value.is_integer() or abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3g}"


CANDIDATE_COLUMNS = ("type", "protocol", "address", "port", "priority", "related", "relay via")


def candidates_table(result: CheckResult) -> Table | None:
    """The candidates a gathering result lists, one row each, as Trickle ICE shows them."""
    candidates = result.details.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return None
    table = Table(title=f"{result.target}", title_justify="left", box=None, padding=(0, 1))
    for column in CANDIDATE_COLUMNS:
        table.add_column(column, no_wrap=True)
    for candidate in candidates:
        if isinstance(candidate, dict):
            table.add_row(*_candidate_cells(candidate))
    return table


def _candidate_cells(candidate: dict[str, JsonValue]) -> tuple[str, ...]:
    related = candidate.get("related_address")
    return (
        str(candidate.get("type")),
        str(candidate.get("protocol")),
        str(candidate.get("address")),
        str(candidate.get("port")),
        str(candidate.get("priority")),
        f"{related}:{candidate.get('related_port')}" if related else "",
        str(candidate.get("relay_protocol") or ""),
    )


def _print_candidates(results: Sequence[CheckResult], console: Console) -> None:
    for result in results:
        table = candidates_table(result)
        if table is not None:
            console.print(table)


def _print_explanations(results: Sequence[CheckResult], console: Console) -> None:
    for result in results:
        if result.status not in (Status.FAIL, Status.WARN) or not (result.cause or result.fix):
            continue
        _, style = STATUS_STYLE[result.status]
        console.print(Text(f"{result.check} ({result.target})", style=style))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for label, text in (("  cause:", result.cause), ("  fix:", result.fix)):
            if text:
                grid.add_row(Text(label, style="bold"), text)
        console.print(grid)
    console.print()


def requirements_table(requirements: Sequence[RequirementOutcome]) -> Table:
    table = Table(title="requirements", title_justify="left", title_style="bold")
    table.add_column("required", no_wrap=True)
    table.add_column("met", no_wrap=True)
    table.add_column("shown by / failed by", overflow="fold")
    for outcome in requirements:
        met = Text("yes", style="green") if outcome.met else Text("no", style="bold red")
        evidence = (
            ", ".join(outcome.failed_by or outcome.shown_by)
            or outcome.missing
            or "no check tested it"
        )
        table.add_row(outcome.name, met, evidence)
    return table


def verdict_text(report: Report) -> Text:
    style = STATUS_STYLE[report.status][1] if report.exit_code == 0 else "bold red"
    return Text(report.verdict, style=style)


# --- stored reports (rtccheck report, rtccheck reports) ---------------------------------------


def render_stored_report(stored: dict[str, JsonValue], console: Console) -> None:
    """A stored report: who made it and when, its results by family, what the relay saw."""
    document = stored.get("report")
    report = document if isinstance(document, dict) else {}
    console.print(stored_header(stored, report))
    results = [_result(item) for item in _dicts(report.get("results"))]
    for family in dict.fromkeys(result.family for result in results):
        family_results = [r for r in results if r.family == family]
        console.print(family_table(family, family_results))
        _print_explanations(family_results, console)
    observed = report.get("relay_observed")
    if isinstance(observed, dict):
        console.print(relay_observed_table(observed))
    failed = report.get("exit_code") not in (0, None)
    console.print(Text(str(report.get("verdict", "")), style="bold red" if failed else "green"))


def stored_header(stored: dict[str, JsonValue], report: dict[str, JsonValue]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("report", str(stored.get("id")))
    grid.add_row("stored", _when(stored.get("stored_at")))
    grid.add_row("source", str(stored.get("source")))
    grid.add_row("run", f"{report.get('started_at')} ({report.get('tool_version')})")
    client = report.get("client")
    if isinstance(client, dict):
        browser = " ".join(str(client[k]) for k in ("browser", "browser_version") if client.get(k))
        grid.add_row("client", f"{browser or '?'} on {client.get('os') or '?'}")
    return grid


def relay_observed_table(observed: dict[str, JsonValue]) -> Table:
    title = f"relay observed (test {observed.get('test_id') or '-'})"
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in ("transport", "client", "relay", "relayed", "to peers", "from peers", "errors"):
        table.add_column(column, overflow="fold")
    for entry in _dicts(observed.get("allocations")):
        errors = ", ".join(
            f"{e.get('code')}x{e.get('count')}" for e in _dicts(entry.get("errors_answered"))
        )
        relayed = entry.get("relayed_address")
        table.add_row(
            str(entry.get("transport")),
            f"{entry.get('client_address')}:{entry.get('client_port')}",
            f"{entry.get('server_address')}:{entry.get('server_port')}",
            f"{relayed}:{entry.get('relayed_port')}" if relayed else "-",
            str(entry.get("bytes_to_peers")),
            str(entry.get("bytes_from_peers")),
            errors or "-",
        )
    return table


def render_report_list(summaries: JsonValue, console: Console) -> None:
    rows = _dicts(summaries)
    table = Table(title=f"reports ({len(rows)})", title_justify="left", title_style="bold")
    for column in ("id", "stored", "source", "status", "verdict"):
        table.add_column(column, overflow="fold", no_wrap=column != "verdict")
    for row in rows:
        label, style = _status_label(row.get("status"))
        table.add_row(
            str(row.get("id")),
            _when(row.get("stored_at")),
            str(row.get("source")),
            Text(label, style=style),
            str(row.get("verdict")),
        )
    console.print(table)


def _status_label(status: JsonValue | None) -> tuple[str, str]:
    known = {s.value: s for s in Status}
    return (
        STATUS_STYLE[known[status]]
        if isinstance(status, str) and status in known
        else (
            str(status),
            "",
        )
    )


def _dicts(value: JsonValue | None) -> list[dict[str, JsonValue]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _when(value: JsonValue | None) -> str:
    return utc_text(float(value)) if isinstance(value, int | float) else "-"


def _result(item: dict[str, JsonValue]) -> CheckResult:
    status = item.get("status")
    metrics = item.get("metrics")
    details = item.get("details")
    return CheckResult(
        check=str(item.get("check")),
        target=str(item.get("target")),
        status=Status(status) if isinstance(status, str) and status in _STATUSES else Status.SKIP,
        summary=str(item.get("summary")),
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float | str) or v is None}
        if isinstance(metrics, dict)
        else {},
        cause_id=_stored_cause_id(item),
        cause=_text(item.get("cause")),
        fix=_text(item.get("fix")),
        details=details if isinstance(details, dict) else {},
    )


_STATUSES = {s.value for s in Status}
_CAUSE_ID_KEY = "cause_id"


def _stored_cause_id(item: dict[str, JsonValue]) -> str | None:
    """A stored report's cause id, as stored (reports from other sources may carry ids this
    version of rtccheck does not know)."""
    return _text(item.get(_CAUSE_ID_KEY))


def _text(value: JsonValue | None) -> str | None:
    return value if isinstance(value, str) else None
