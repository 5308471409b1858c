"""Process handling for the benchmark: spawning pinned process groups, stopping them for sure,
free ports, and readings from /proc (CPU time, RSS, context switches) over a process tree.

Every process started here is its own session and process group, so stopping it stops whatever
it forked (gunicorn's and granian's workers, hypercorn's spawned child).  Only processes started
here are ever signalled.
"""

import os
import resource
import shutil
import signal
import socket
import subprocess
import time

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# pid -> Popen of every live process group we started; emptied by stop()/stop_all().
_LIVE = {}


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def raise_nofile():
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def _child_setup():
    # Runs in the child between fork and exec (start_new_session already made it a leader).
    raise_nofile()


# Decided once, at import: the runner later pins itself to wrk's core, after which its own
# affinity no longer says how many CPUs the machine has.
_CAN_PIN = shutil.which("taskset") is not None and {0, 1} <= os.sched_getaffinity(0)


def can_pin():
    return _CAN_PIN


def affinity(pid):
    """Sorted CPUs the process may run on (empty if it is gone)."""
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return []


def spawn(argv, *, cpu=None, stdout=None, env=None, cwd=None):
    """Start argv as a new process group, pinned to `cpu` with taskset when possible."""
    if cpu is not None and can_pin():
        argv = ["taskset", "-c", str(cpu)] + list(argv)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_child_setup,
    )
    _LIVE[proc.pid] = proc
    return proc


def _group_members(pgid):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is not None and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_gone(proc):
    proc.poll()  # reap the leader if it exited, so it no longer counts as a member
    return proc.returncode is not None and not _group_members(proc.pid)


def stop(proc, grace=5.0):
    """SIGTERM the process group, wait up to `grace` s, then SIGKILL whatever of it is left.

    The group id stays reserved while any member lives, so signalling it reaches only
    processes we started, even after the leader has exited.
    """
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _group_gone(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _group_gone(proc):
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    _LIVE.pop(proc.pid, None)
    return proc.returncode


def forget(proc):
    """Drop a process that has exited and been waited for from the live set."""
    _LIVE.pop(proc.pid, None)


def stop_all():
    for proc in list(_LIVE.values()):
        try:
            stop(proc, grace=2.0)
        except Exception:  # keep going: every group must be stopped
            pass


# ---------------------------------------------------------------------------------------------
# /proc readings


def _stat(pid):
    """Fields of /proc/PID/stat from field 3 (state) on, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data[data.rindex(")") + 2 :].split()


def tree(pid):
    """pid and all its descendants that are alive now."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_cpu_seconds(pid):
    """utime + stime (all threads) summed over the process tree, in seconds."""
    ticks = 0
    for p in tree(pid):
        fields = _stat(p)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def _status_value(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def tree_rss_bytes(pid):
    """VmRSS summed over the process tree, in bytes."""
    return sum(_status_value(f"/proc/{p}/status", "VmRSS:") * 1024 for p in tree(pid))


def tree_wakeups(pid):
    """Context switches (voluntary + involuntary) of every thread in the tree: how often it ran."""
    total = 0
    for p in tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for t in tids:
            path = f"/proc/{p}/task/{t}/status"
            total += _status_value(path, "voluntary_ctxt_switches:")
            total += _status_value(path, "nonvoluntary_ctxt_switches:")
    return total


def children_cpu_seconds():
    """CPU time of reaped children of this process (to measure wrk's own use of its core)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def core_ticks():
    """{cpu index: (busy ticks, total ticks)} from /proc/stat; busy includes irq/softirq/steal."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                vals = [int(v) for v in vals[:8]]
                idle = vals[3] + vals[4]
                out[int(name[3:])] = (sum(vals) - idle, sum(vals))
    return out


def core_busy(before, after):
    """{cpu index: fraction of the interval it was busy} between two core_ticks() readings."""
    out = {}
    for cpu, (busy1, total1) in after.items():
        busy0, total0 = before.get(cpu, (busy1, total1))
        out[cpu] = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
    return out
