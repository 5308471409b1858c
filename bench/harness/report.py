"""Machine facts, target checks, and the JSON + markdown outputs."""

import os
import platform
import subprocess
from importlib import metadata

from . import servers

PACKAGES = [
    "flask-restful-async", "uvicorn", "httptools", "uvloop", "granian", "hypercorn",
    "gunicorn", "starlette", "flask", "redis", "hiredis",
]  # fmt: skip


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def _redis_server_version():
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    except OSError:
        return "missing"
    return out.stdout.strip().split(" sha=")[0]


def machine():
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    except OSError:
        wrk = "missing"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_model": _cpu_model(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "wrk": wrk.split(" Copyright")[0].strip(),
        "redis_server": _redis_server_version(),
        "versions": versions,
        "loadavg_start": loadavg(),
    }


# ---------------------------------------------------------------------------------------------
# Targets


def evaluate(target, results):
    """PASS/FAIL (or N/A when a run is missing) for one target; a run with errors is noted."""
    out = {"label": target.label, "kind": target.kind, "threshold": target.threshold,
           "unit": target.unit}
    mine = results.get(target.run)
    other = results.get(target.other) if target.other else None
    missing = [
        name
        for name, res in ((target.run, mine), (target.other, other))
        if name and (res is None or "failed" in res or res.get(target.metric) is None)
    ]
    if missing:
        why = [res["not_available"] for res in (mine, other) if res and res.get("not_available")]
        out.update(value=None, status="N/A",
                   note="; ".join(why) or "no result for " + ", ".join(missing))
        return out
    if target.kind == "ratio":
        value = mine[target.metric] / other[target.metric] if other[target.metric] else None
        ok = value is not None and value >= target.threshold
    else:
        value = mine[target.metric]
        ok = value <= target.threshold
    out.update(value=value, status="PASS" if ok else "FAIL")
    with_errors = [n for n, r in ((target.run, mine), (target.other, other)) if r and r.get("error_total")]
    if with_errors:
        out["note"] = "errors in " + ", ".join(with_errors)
    return out


# ---------------------------------------------------------------------------------------------
# Markdown


def _n(x, digits=0):
    return "-" if x is None else f"{x:,.{digits}f}"


def _ms(x):
    if x is None:
        return "-"
    return f"{x:.2f} ms" if x < 100 else f"{x:,.0f} ms"


def _pct(x):
    return "-" if x is None else f"{x * 100:.0f}%"


def _kib(b):
    return "-" if b is None else f"{b / 1024:,.2f} KiB"


def _mib(b):
    return "-" if b is None else f"{b / (1 << 20):,.1f} MiB"


def _errors(res):
    total = res.get("error_total") or 0
    if not total:
        return "0"
    parts = [f"{k} {v}" for k, v in (res.get("errors") or {}).items() if v]
    return f"**{total}** ⚠ " + ("(" + ", ".join(parts) + ")" if parts else "")


def _target_value(t):
    if t["value"] is None:
        return "-"
    if t["kind"] == "ratio":
        return f"{t['value']:.2f}x"
    if t["label"].startswith("RSS") or t.get("unit") == "B":
        return f"{t['value']:,.0f} B"
    if t.get("unit") == "ms":
        return f"{t['value']:,.1f} ms"
    return f"{t['value']:.3f} s"


def _target_need(t):
    if t["kind"] == "ratio":
        return f">= {t['threshold']:.1f}x"
    if t["label"].startswith("RSS") or t.get("unit") == "B":
        return f"<= {t['threshold']:,.0f} B"
    if t.get("unit") == "ms":
        return f"<= {t['threshold']:,.0f} ms"
    return f"<= {t['threshold']:.2f} s"


def _wrk_table(sc, results):
    ours = results.get(sc.ours) if sc.ours else None
    ours_rps = ours.get("rps") if ours and "failed" not in ours else None
    head = ["server", "requests/s"]
    if sc.payload_bytes:
        head.append("MiB/s")
    head += ["p99", "errors", "server CPU", "wrk CPU"]
    with_service = any("service_cpu" in r for r in results.values())
    if with_service:
        head.append("redis CPU")
    if sc.ours:
        head.append(f"{sc.ours} / server")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    notes = []
    for run in sc.runs:
        res = results.get(run.label)
        if res is None:
            continue
        if "failed" in res:
            cells = [run.label, "FAILED"] + [""] * (len(head) - 2)
            notes.append(f"- {run.label}: {res['failed'].splitlines()[0]}")
        else:
            ratio = f"{ours_rps / res['rps']:.2f}x" if ours_rps and res["rps"] else "-"
            cells = [run.label, _n(res["rps"])]
            if sc.payload_bytes:
                cells.append(_n(res.get("mib_s"), 1))
            cells += [_ms(res["p99_ms"]), _errors(res), _pct(res["server_cpu"]),
                      _pct(res.get("wrk_cpu"))]
            if with_service:
                cells.append(_pct(res.get("service_cpu")))
            if sc.ours:
                cells.append(ratio)
            if res.get("error_total"):
                notes.append(f"- {run.label}: {res['error_total']} errors in the measured run (flagged)")
            if (res.get("wrk_cpu") or 0) + (res.get("service_cpu") or 0) >= 0.9:
                extra = (f" (and redis-server {_pct(res['service_cpu'])} beside it)"
                         if res.get("service_cpu") is not None else "")
                notes.append(f"- {run.label}: wrk used {_pct(res['wrk_cpu'])} of its core{extra}; "
                             "the load generator may have been the limit")
            if len(res.get("rps_all") or ()) > 1:
                notes.append(f"- {run.label}: median of {len(res['rps_all'])} measured runs ("
                             + ", ".join(_n(x) for x in res["rps_all"]) + " requests/s)")
        lines.append("| " + " | ".join(cells) + " |")
    return lines, notes


def _idle_table(sc, results):
    lines = ["| server | CPU seconds | share of a core | wakeups | processes |",
             "|---|---:|---:|---:|---:|"]
    notes = []
    for run in sc.runs:
        res = results.get(run.label)
        if res is None:
            continue
        if "failed" in res:
            lines.append(f"| {run.label} | FAILED | | | |")
            notes.append(f"- {run.label}: {res['failed'].splitlines()[0]}")
            continue
        share = res["cpu_s"] / res["seconds"] if res["seconds"] else None
        lines.append(f"| {run.label} | {res['cpu_s']:.3f} | {share * 100:.2f}% | "
                     f"{res['wakeups']:,} | {res['processes']} |")
    return lines, notes


def _rss_table(sc, results):
    lines = ["| server | connections held | RSS before | RSS after | per connection | "
             "CPU s in 3 s held |", "|---|---:|---:|---:|---:|---:|"]
    notes = []
    for run in sc.runs:
        res = results.get(run.label)
        if res is None:
            continue
        if "failed" in res:
            lines.append(f"| {run.label} | FAILED | | | | |")
            notes.append(f"- {run.label}: {res['failed'].splitlines()[0]}")
            continue
        held = f"{res['alive']:,} / {res['requested']:,}"
        lines.append(f"| {run.label} | {held} | {_mib(res['rss_before'])} | "
                     f"{_mib(res['rss_after'])} | {_kib(res['rss_per_conn'])} | "
                     f"{res['cpu_s_3s_held']:.3f} |")
        if res["alive"] < res["requested"] or res["alive_after_3s"] < res["alive"]:
            why = []
            if res["failures"]:
                why.append(f"{res['failures']} not opened or not answered "
                           f"({'; '.join(res['failure_sample'])})")
            if res["opened"] > res["alive"]:
                why.append(f"{res['opened'] - res['alive']} closed by the server before the "
                           "measurement")
            if res["alive"] > res["alive_after_3s"]:
                why.append(f"{res['alive'] - res['alive_after_3s']} closed during the 3 s hold")
            notes.append(f"- {run.label}: {res['requested'] - res['alive']:,} of "
                         f"{res['requested']:,} connections not held: " + ", ".join(why))
    return lines, notes


def client_table(results, ours="ours"):
    """The Redis client alone (bench/redis_client.py): operations per second per client."""
    head = ["client", "GET/s", "LRANGE 0 99/s", "client CPU per GET", "redis CPU (GET)",
            f"{ours} / client GET", f"{ours} / client LRANGE"]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    notes = []
    mine = results.get(ours) or {}
    for label, res in results.items():
        if "failed" in res:
            lines.append(f"| {label} | FAILED |" + " |" * (len(head) - 2))
            notes.append(f"- {label}: {res['failed'].splitlines()[0]}")
            continue

        def ratio(op):
            a, b = mine.get(f"{op}_ops"), res.get(f"{op}_ops")
            return f"{a / b:.2f}x" if a and b else "-"

        cpu = res.get("get_cpu_us")
        lines.append(f"| {label} | {_n(res['get_ops'])} | {_n(res['lrange_ops'])} | "
                     f"{'-' if cpu is None else f'{cpu:.1f} us'} | "
                     f"{_pct(res.get('get_redis_cpu'))} | {ratio('get')} | {ratio('lrange')} |")
        runs = res.get("get_all") or []
        if len(runs) > 1:
            notes.append(f"- {label}" + (f" ({res['module']})" if res.get("module") else "")
                         + f": median of {len(runs)} runs (GET/s "
                         + ", ".join(_n(x) for x in runs) + "; LRANGE/s "
                         + ", ".join(_n(x) for x in res.get("lrange_all") or []) + ")")
    return lines, notes


def _server_table(sc, results):
    """A scenario's own columns (kind "server"), and a ratio column for the first one."""
    cols = sc.columns
    head = ["server"] + [c[0] for c in cols]
    first = cols[0][1] if cols else None
    ours = results.get(sc.ours) if sc.ours else None
    mine = ours.get(first) if ours and first else None
    if sc.ours:
        head.append(f"{sc.ours} / server")
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    notes = []
    for run in sc.runs:
        res = results.get(run.label)
        if res is None:
            continue
        if "failed" in res or "not_available" in res:
            why = res.get("failed") or res["not_available"]
            lines.append(f"| {run.label} | " + ("FAILED" if "failed" in res else "not available")
                         + " |" * (len(head) - 1))
            notes.append(f"- {run.label}: {why.splitlines()[0]}")
            continue
        cells = [run.label]
        for _, key, fmt in cols:
            value = res.get(key)
            cells.append("-" if value is None else fmt(value))
        if sc.ours:
            theirs = res.get(first)
            cells.append(f"{mine / theirs:.2f}x" if mine and theirs else "-")
        lines.append("| " + " | ".join(cells) + " |")
        if res.get("error_total"):
            notes.append(f"- {run.label}: {res['error_total']} errors (connections not held or "
                         "events not received; flagged)")
        if res.get("note"):
            notes.append(f"- {run.label}: {res['note']}")
    return lines, notes


TABLES = {"server": _server_table, "wrk": _wrk_table, "idle": _idle_table, "rss": _rss_table,
          "client": lambda sc, results: client_table(results, sc.ours)}


def _parallel_line(m, doc):
    """Whether the two CPUs really ran in parallel: a probe before the run, and the runs."""
    line = "- Parallelism: "
    probe = m.get("parallel_cpus")
    line += f"two pinned busy loops got {probe:.2f} CPUs together" if probe else "not probed"
    sums = sorted(
        r["server_cpu"] + r["wrk_cpu"]
        for sc in doc["scenarios"].values() if sc["kind"] == "wrk"
        for r in sc["results"].values() if "failed" not in r and r.get("wrk_cpu") is not None
    )
    if sums:
        median = sums[len(sums) // 2]
        line += f"; server CPU + wrk CPU, median over the load runs: {median:.2f}"
        if median < 1.2:
            line += (" (**warning**: server and wrk together got little more than one CPU: "
                     "other work took CPU time or the two CPUs are not independent; absolute "
                     "figures are depressed and ratios less reliable)")
    return line


def markdown(doc, scenarios):
    m = doc["machine"]
    s = doc["settings"]
    v = ", ".join(f"{k} {val}" for k, val in m["versions"].items() if val)
    out = [
        f"# Benchmark {doc['date']} ({doc['mode']} run)",
        "",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['os']}, Linux {m['kernel']}, "
        f"Python {m['python']}",
        f"- Quietness: cores busy before the run (2 s, nothing of ours running): "
        + ", ".join(f"core {c} {b:.0%}" for c, b in sorted((m.get("busy_before") or {}).items()))
        + f"; load average (1/5/15 min) at start {m['loadavg_start']}, at end {m.get('loadavg_end')}",
        f"- Pinning: {s['pinning']}",
        _parallel_line(m, doc),
        f"- {m['wrk']}; {m.get('redis_server') or 'redis-server missing'}; {s['threads']} thread(s), --latency; {s['warmup']:g} s warm-up then "
        f"{s['duration']:g} s measured per server"
        + (f" (median of {s['repeat']} runs)" if s.get("repeat", 1) > 1 else "") + ";"
        f" idle window {s['idle_seconds']:g} s; "
        f"{s['rss_connections']:,} idle connections",
        f"- Versions: {v}",
        "",
    ]
    if doc["targets"]:
        out += ["## Targets", "", "| target | measured | needed | result |", "|---|---:|---:|:---:|"]
        for t in doc["targets"]:
            result = t["status"] + (f" ({t['note']})" if t.get("note") else "")
            out.append(f"| {t['label']} | {_target_value(t)} | {_target_need(t)} | {result} |")
        out.append("")
    for sc in scenarios:
        results = doc["scenarios"].get(sc.name, {}).get("results")
        if not results:
            continue
        lines, notes = TABLES[sc.kind](sc, results)
        out += [f"## {sc.title}", "", sc.description, ""] + lines + [""]
        if notes:
            out += notes + [""]
    failed = doc.get("failed_runs") or []
    if failed:
        out += ["## Servers that failed", ""] + [f"- {f}" for f in failed] + [""]
    out += ["Server settings: " + "; ".join(f"{x.name}: {x.note}" for x in servers.SERVERS), ""]
    return "\n".join(out)
