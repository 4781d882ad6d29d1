"""Medians, the printed table, and the JSON dump."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from bench import procs
from bench.scenarios import Measurement, Scenario

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BASELINE = "coturn"
NOISY = 30.0  # median percent of a core used by other processes that makes a row suspect


@dataclass
class Summary:
    scenario: str
    server: str
    runs: int  # successful runs the medians are taken over
    attempted: int
    rate: float | None
    unit: str
    rate_min: float | None = None
    rate_max: float | None = None
    mbit_per_s: float | None = None
    server_cpu: float | None = None
    load_cpu: float | None = None
    other_cpu: float | None = None
    softirq_cpu: float | None = None
    loss: float | None = None
    server_rss_kib: int | None = None
    ratio: float | None = None  # this server's median / the baseline's median, same scenario
    note: str = ""
    quiet_rate: float | None = None  # median over the runs where other processes were quiet
    quiet_runs: int = 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    scenarios: list[Scenario], measurements: list[Measurement], skipped: dict[str, str]
) -> list[Summary]:
    out: list[Summary] = []
    servers_seen: list[str] = []
    for m in measurements:
        if m.server not in servers_seen:
            servers_seen.append(m.server)
    for sc in scenarios:
        base: float | None = None
        rows: list[Summary] = []
        for server in servers_seen:
            ms = [m for m in measurements if m.scenario == sc.name and m.server == server]
            if not ms:
                continue
            good = [m for m in ms if m.ok]
            rates = [m.rate for m in good]
            mbits = [m.mbit_per_s for m in good if m.mbit_per_s is not None]
            reasons = sorted({m.reason for m in ms if m.reason})
            rss = _median([float(m.server_rss_kib) for m in good])
            row = Summary(
                scenario=sc.name,
                server=server,
                runs=len(good),
                attempted=len(ms),
                rate=_median(rates),
                unit=sc.unit,
                rate_min=min(rates) if rates else None,
                rate_max=max(rates) if rates else None,
                mbit_per_s=_median(mbits),
                server_cpu=_median([m.server_cpu for m in good]),
                load_cpu=_median([m.load_cpu for m in good]),
                other_cpu=_median([m.other_cpu for m in good]),
                softirq_cpu=_median([m.softirq_cpu for m in good]),
                loss=_median([m.loss for m in good]),
                server_rss_kib=int(rss) if rss is not None else None,
                ratio=None,
                note="; ".join(reasons),
            )
            quiet = [m.rate for m in good if m.other_cpu <= NOISY]
            row.quiet_rate, row.quiet_runs = _median(quiet), len(quiet)
            if row.other_cpu is not None and row.other_cpu > NOISY:
                noisy = f"noisy: other processes used {row.other_cpu:.0f}% of a core"
                row.note = f"{row.note}; {noisy}" if row.note else noisy
            if server == BASELINE:
                base = row.rate
            rows.append(row)
        for row in rows:
            if row.server != BASELINE and base and row.rate is not None:
                row.ratio = row.rate / base
        out.extend(rows)
        for key, unit in sc.extra:
            out.extend(_extra_rows(sc, key, unit, measurements, servers_seen))
    for server, why in skipped.items():
        out.append(
            Summary(
                scenario="*",
                server=server,
                runs=0,
                attempted=0,
                rate=None,
                unit="",
                note=f"skipped: {why}",
            )
        )
    return out


def _extra_rows(
    sc: Scenario, key: str, unit: str, measurements: list[Measurement], servers_seen: list[str]
) -> list[Summary]:
    rows: list[Summary] = []
    base: float | None = None
    for server in servers_seen:
        ms = [m for m in measurements if m.scenario == sc.name and m.server == server]
        values = [m.metrics[key] for m in ms if m.ok and key in m.metrics]
        if not ms:
            continue
        value = _median(values)
        rows.append(
            Summary(
                scenario=f"{sc.name}:{key}",
                server=server,
                runs=len(values),
                attempted=len(ms),
                rate=value,
                unit=unit,
                rate_min=min(values) if values else None,
                rate_max=max(values) if values else None,
            )
        )
        if server == BASELINE:
            base = value
    for row in rows:
        if row.server != BASELINE and base and row.rate is not None:
            row.ratio = row.rate / base
    return rows


def _fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(summaries: list[Summary]) -> str:
    header = [
        "scenario",
        "server",
        "rate",
        "unit",
        "Mbit/s",
        "cpu%",
        "load%",
        "other%",
        "sirq%",
        "loss%",
        "RSS MB",
        "runs",
        "spread",
        "quiet",
        "ratio",
    ]
    rows = [header]
    for s in summaries:
        spread = "-"
        if s.rate and s.rate_min is not None and s.rate_max is not None and s.runs > 1:
            spread = f"±{50 * (s.rate_max - s.rate_min) / s.rate:.0f}%"
        rows.append(
            [
                s.scenario,
                s.server,
                _fmt_rate(s.rate),
                s.unit or "-",
                _fmt(s.mbit_per_s, ".1f"),
                _fmt(s.server_cpu, ".0f"),
                _fmt(s.load_cpu, ".0f"),
                _fmt(s.other_cpu, ".0f"),
                _fmt(s.softirq_cpu, ".0f"),
                _fmt(None if s.loss is None else 100 * s.loss, ".1f"),
                _fmt(None if s.server_rss_kib is None else s.server_rss_kib / 1024, ".1f"),
                f"{s.runs}/{s.attempted}",
                spread,
                f"{_fmt_rate(s.quiet_rate)} ({s.quiet_runs})" if s.quiet_runs else "-",
                _fmt(s.ratio, ".2f") + ("x" if s.ratio is not None else ""),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    left = {0, 1, 3}
    lines = []
    for i, r in enumerate(rows):
        cells = [c.ljust(widths[j]) if j in left else c.rjust(widths[j]) for j, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {s.scenario} / {s.server}: {s.note}" for s in summaries if s.note]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)


LEGEND = (
    "rate: median over the successful runs; cpu%: the server (all its processes), percent of "
    "one core (200 = both cores); load%: our load generator or turnutils_uclient + "
    "turnutils_peer; other%: other processes on the machine (noise); sirq%: kernel packet work "
    "(softirq, charged to no process); loss%: unanswered share; RSS: server after the run; "
    "spread: half the min-max range; quiet: median rate of the runs (count) in which other "
    "processes used at most 30% of a core; ratio: this server / coturn (for the latency and memory "
    "rows lower is better, for all others higher)."
)


def machine_info() -> dict[str, object]:
    info: dict[str, object] = {
        "cpus": procs.NCPU,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadavg": procs.loadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if shutil.which("turnserver"):
        try:
            out = subprocess.run(
                ["turnserver", "--version"], check=False, capture_output=True, text=True, timeout=10
            )
            info["coturn"] = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        info["uvloop"] = metadata.version("uvloop")
    except metadata.PackageNotFoundError:
        info["uvloop"] = None
    return info


def write_json(
    path: Path | None,
    *,
    options: dict[str, object],
    machine_before: dict[str, object],
    machine_after: dict[str, object],
    measurements: list[Measurement],
    summaries: list[Summary],
    elapsed: float,
) -> Path:
    if path is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / time.strftime("bench-%Y%m%d-%H%M%S.json")
    doc = {
        "started_unix": time.time() - elapsed,
        "elapsed_seconds": round(elapsed, 1),
        "options": options,
        "machine": machine_before,
        "loadavg_after": machine_after.get("loadavg"),
        "legend": LEGEND,
        "summary": [asdict(s) for s in summaries],
        "measurements": [asdict(m) for m in measurements],
        "pid": os.getpid(),
    }
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path
