#!/usr/bin/env python3
"""Benchmark: our server against uvicorn, granian, hypercorn and gunicorn (see README.md).

    .venv/bin/python bench/run.py            # full run -> bench/results/<date>.{json,md}
    .venv/bin/python bench/run.py --smoke    # ours + uvicorn, hello only, 2 s; writes nothing here

Exit status: 0 when every server started and answered; 1 when one did not (ratios and targets
never change the exit status); 2 for bad arguments or missing tools; 130 when interrupted.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import load, procs, report, runner  # noqa: E402
from harness.scenarios import SMOKE_SERVERS, Run, all_scenarios  # noqa: E402
from harness.servers import baseline  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="hello only, ours + uvicorn only, 2 s runs; results go to a temp dir")
    p.add_argument("--scenarios", help="comma-separated scenario names or prefixes (e.g. hello,io10-1000)")
    p.add_argument("--servers", help="comma-separated server names or prefixes (e.g. ours,uvicorn)")
    p.add_argument("--duration", type=float, help="measured seconds per wrk run (10; smoke 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each wrk run (3; smoke 1)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measured wrk runs per server; the median by requests/s is reported (1)")
    p.add_argument("--idle-seconds", type=float, default=10.0, help="idle CPU window (10)")
    p.add_argument("--rss-connections", type=int, default=5000, help="idle connections held (5000)")
    p.add_argument("--out", help="directory for <date>.json/.md (default bench/results/ for an "
                   "unfiltered full run, a temp dir otherwise)")
    p.add_argument("--list", action="store_true", help="list scenarios and servers, then exit")
    p.add_argument("--baseline", metavar="DIR",
                   help="also run each of our servers from DIR, another checkout of this "
                        "repository built in place (rows <name>@base): before/after in one run")
    return p.parse_args(argv)


def _matches(name, patterns):
    return any(name == p or name.startswith(p) for p in patterns)


def select(args):
    scenarios = all_scenarios()
    if args.smoke:
        scenarios = [sc for sc in scenarios if sc.smoke]
        for sc in scenarios:
            sc.runs = [r for r in sc.runs if r.label in SMOKE_SERVERS]
    if args.scenarios:
        pats = [x.strip() for x in args.scenarios.split(",") if x.strip()]
        scenarios = [sc for sc in scenarios if _matches(sc.name, pats)]
    if args.servers:
        pats = [x.strip() for x in args.servers.split(",") if x.strip()]
        for sc in scenarios:
            sc.runs = [r for r in sc.runs if _matches(r.label, pats)]
    if args.baseline:
        for sc in scenarios:
            sc.runs += [Run(r.label + "@base", baseline(r.server, args.baseline), r.target)
                        for r in sc.runs if r.server is not None and r.server.ours]
    return [sc for sc in scenarios if sc.runs]


def quietness(seconds=2.0):
    """How busy each core is while nothing of ours runs (other work skews every figure)."""
    before = procs.core_ticks()
    time.sleep(seconds)
    return {cpu: round(b, 3) for cpu, b in procs.core_busy(before, procs.core_ticks()).items()}


def parallelism(seconds=1.0):
    """CPUs' worth of time two busy loops pinned to the server and wrk cores get together
    (about 2.0 on an idle machine with two real cores)."""
    if not procs.can_pin():
        return None
    loop = f"import time\nt = time.monotonic() + {seconds}\nwhile time.monotonic() < t: pass"
    before = procs.children_cpu_seconds()
    spinners = [procs.spawn([sys.executable, "-c", loop], cpu=c)
                for c in (runner.SERVER_CPU, load.WRK_CPU)]
    for p in spinners:
        p.wait()
        procs.forget(p)
    return round((procs.children_cpu_seconds() - before) / seconds, 2)


def _on_signal(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    args = parse_args(argv)
    scenarios = select(args)
    if args.list:
        for sc in all_scenarios():
            print(f"{sc.name:16} {sc.kind:5} {', '.join(r.label for r in sc.runs)}")
        return 0
    if not scenarios:
        print("bench: no scenario left after --scenarios/--servers", file=sys.stderr)
        return 2
    if not shutil.which("wrk") and any(sc.kind == "wrk" for sc in scenarios):
        print("bench: wrk not found (Debian package 'wrk'; `make bench` installs it)", file=sys.stderr)
        return 2

    settings = runner.Settings(
        duration=args.duration or (2.0 if args.smoke else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.smoke else 3.0),
        threads=args.threads,
        repeat=max(1, args.repeat),
        idle_seconds=args.idle_seconds,
        rss_connections=args.rss_connections,
    )
    pinned = procs.can_pin()
    if pinned:
        os.sched_setaffinity(0, {load.WRK_CPU})  # this runner and its clients share wrk's core
        pinning = f"servers on core {runner.SERVER_CPU}, wrk and the Python clients on core {load.WRK_CPU}"
    else:
        pinning = "NONE (needs taskset and 2 CPUs): figures are not comparable to pinned runs"
        print("bench: warning: not pinning:", pinning, file=sys.stderr)
    procs.raise_nofile()

    partial = bool(args.scenarios or args.servers)
    mode = "smoke" if args.smoke else ("partial" if partial else "full")
    date = datetime.date.today().isoformat()
    logdir = tempfile.mkdtemp(prefix="bench-logs-")
    doc = {
        "date": date,
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "mode": mode,
        "machine": report.machine(),
        "settings": {
            "duration": settings.duration, "warmup": settings.warmup, "threads": settings.threads,
            "repeat": settings.repeat, "idle_seconds": settings.idle_seconds, "rss_connections": settings.rss_connections,
            "pinning": pinning, "logs": logdir,
        },
        "scenarios": {},
        "targets": [],
        "failed_runs": [],
    }  # fmt: skip
    print(f"bench: {mode} run, {len(scenarios)} scenario(s); server logs in {logdir}")
    quiet = quietness()
    doc["machine"]["busy_before"] = quiet
    doc["machine"]["parallel_cpus"] = parallelism()
    if (doc["machine"]["parallel_cpus"] or 2) < 1.8:
        print(f"bench: warning: two pinned busy loops got only {doc['machine']['parallel_cpus']} "
              "CPUs together: the two cores are not independent right now", file=sys.stderr)
    noisy = {cpu: b for cpu, b in quiet.items() if b > 0.10}
    if noisy:
        print("bench: warning: the machine is not quiet (CPU busy over 2 s before starting: "
              + ", ".join(f"core {c} {b:.0%}" for c, b in sorted(noisy.items())) + ")",
              file=sys.stderr)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    interrupted = False
    t0 = time.monotonic()
    try:
        for sc in scenarios:
            print(f"[{sc.name}] {sc.title}")
            results = runner.run_scenario(sc, settings, logdir)
            doc["scenarios"][sc.name] = {
                "title": sc.title, "kind": sc.kind, "description": sc.description,
                "connections": sc.connections if sc.kind == "wrk" else None,
                "ours": sc.ours, "results": results,
            }  # fmt: skip
            for label, res in results.items():
                if "failed" in res:
                    doc["failed_runs"].append(f"{sc.name} / {label}: {res['failed'].splitlines()[0]}")
    except KeyboardInterrupt:
        interrupted = True
        print("\nbench: interrupted; stopping servers", file=sys.stderr)
    finally:
        procs.stop_all()

    doc["elapsed_s"] = round(time.monotonic() - t0, 1)
    doc["machine"]["loadavg_end"] = report.loadavg()
    ran = {sc.name: doc["scenarios"].get(sc.name, {}).get("results", {}) for sc in scenarios}
    for sc in scenarios:
        for target in sc.targets:
            doc["targets"].append(report.evaluate(target, ran[sc.name]))
    md = report.markdown(doc, scenarios)

    if interrupted:
        print(md)
        return 130
    if args.out:
        outdir = Path(args.out)
    elif mode == "full":
        outdir = RESULTS
    else:
        outdir = Path(tempfile.mkdtemp(prefix=f"bench-{mode}-"))
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / f"{date}.json").write_text(json.dumps(doc, indent=2) + "\n")
    (outdir / f"{date}.md").write_text(md + "\n")
    print()
    print(md)
    print(f"bench: wrote {outdir / (date + '.json')} and {outdir / (date + '.md')} "
          f"in {doc['elapsed_s']:.0f} s")
    if doc["failed_runs"]:
        print(f"bench: {len(doc['failed_runs'])} run(s) failed:", file=sys.stderr)
        for f in doc["failed_runs"]:
            print("  " + f, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
