"""Watch one sandbox from outside and stop it when it takes more than its share of the machine.

The per-process limits (``prlimit`` in ``sandbox.py``) cannot bound what a submission does with
*many* processes: 60 busy children take most of the CPU from a submission graded next to it, and
60 children that each fill a few GB exhaust the memory of the machine. Linux cgroups would bound
a group of processes, but they are rarely writable where graders run (containers, Gradescope),
so this thread measures the sandbox as a whole instead, a few times a second:

- its processes: every descendant of the sandbox's first process (the PID namespace's init, to
  which orphans are reparented, so a double fork does not escape the walk);
- CPU: how many of their threads are busy, i.e. running or ready to run in at least two thirds
  of the samples of the last ``window`` seconds; more than ``Limits.cpus``, and the sandbox is
  killed. Counting busy threads, not CPU seconds, holds on a busy machine too: 60 spinning
  children get little CPU there, but are still 60 threads taking turns with the neighbouring
  submission; and a kernel's helper threads (ZeroMQ, the output thread), runnable now and then
  for a moment, never count;
- memory: their proportional anonymous memory (``Pss_Anon``, pages shared after a fork counted
  once); more than ``Limits.resident_mb``, and the sandbox is killed.

A submission killed here gets the reason in its feedback and in the run's summary. What this
cannot do: act faster than its poll interval (``interval``, 0.2 s) and window (3 s), or stop a submission from
using its allowed share; with ``--jobs N`` on fewer than ``N * cpus`` idle cores, submissions
still share the CPU, which only matters for work close to the time limits.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from typing import Callable

from .sandbox import _children

__all__ = ["Watchdog", "sandbox_usage"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(path: str) -> list[str] | None:
    """The fields of a /proc stat file after the command name (state first), None if gone."""
    try:
        with open(path) as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_and_threads(pid: int) -> tuple[float, int, frozenset[int]] | None:
    """(CPU seconds used, threads, ids of the threads running or runnable) of a live process."""
    fields = _stat(f"/proc/{pid}/stat")
    if fields is None or fields[0] in ("Z", "X"):
        return None
    running = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            task_fields = _stat(f"/proc/{pid}/task/{task}/stat")
            if task_fields is not None and task_fields[0] == "R":
                running.append(int(task))
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[17]), frozenset(running)


def _anon_kb(pid: int) -> int:
    """Anonymous memory of a process in kB, pages shared with other processes split between them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1])
        with open(f"/proc/{pid}/statm") as handle:  # older kernels: resident - shared
            _, resident, shared = (int(v) for v in handle.read().split()[:3])
        return (resident - shared) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError):
        return 0


def sandbox_usage(roots: list[int]) -> dict[int, tuple[float, int, frozenset[int], int]]:
    """pid -> (CPU seconds, threads, ids of running threads, anonymous kB) of ``roots`` and all
    their descendants."""
    usage: dict[int, tuple[float, int, frozenset[int], int]] = {}
    frontier = list(roots)
    while frontier and len(usage) < 10_000:
        pid = frontier.pop()
        if pid in usage:
            continue
        stat = _cpu_and_threads(pid)
        if stat is None:
            continue
        usage[pid] = (*stat, _anon_kb(pid))
        frontier.extend(_children(pid))
    return usage


class Watchdog:
    """A thread that polls one sandbox's processes and calls ``on_breach(reason)`` once.

    Args:
        cpus: threads the sandbox may keep busy (running in 2/3 of the last ``window`` seconds).
        resident_mb: anonymous memory of all its processes together, in MB.
        on_breach: called (from the watchdog's thread) with a one-line reason; kills the sandbox.
    """

    def __init__(self, cpus: float, resident_mb: float, on_breach: Callable[[str], None],
                 interval: float = 0.2, window: float = 3.0):
        self.cpus, self.resident_mb = float(cpus), float(resident_mb)
        self.on_breach, self.interval, self.window = on_breach, interval, window
        self.reason = ""
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, roots: Callable[[], list[int]]) -> None:
        """Start polling the processes under ``roots()`` (called each time: the init may change)."""
        self._thread = threading.Thread(target=self._run, args=(roots,), daemon=True, name="lecture-grade-watchdog")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self, roots: Callable[[], list[int]]) -> None:
        history: deque[tuple[float, float, frozenset]] = deque()  # (time, CPU seconds so far, running threads)
        last: dict[int, float] = {}
        used = 0.0
        while not self._stop.wait(self.interval):
            usage = sandbox_usage(roots())
            used += sum(max(0.0, u[0] - last.get(pid, 0.0)) for pid, u in usage.items())
            last = {pid: u[0] for pid, u in usage.items()}
            now = time.monotonic()
            history.append((now, used, frozenset().union(*(u[2] for u in usage.values()))))
            while history and now - history[0][0] > self.window:
                history.popleft()
            reason = self._check(usage, history)
            if reason:
                self.reason = reason
                self.on_breach(reason)
                return

    def _check(self, usage: dict[int, tuple[float, int, int, int]], history) -> str:
        memory_mb = sum(u[3] for u in usage.values()) / 1024
        self.peak_mb = max(self.peak_mb, memory_mb)
        processes = f"{len(usage)} processes, {sum(u[1] for u in usage.values())} threads"
        if memory_mb > self.resident_mb:
            return f"used {memory_mb:.0f} MB of memory, more than the {self.resident_mb:g} MB allowed ({processes})"
        span = history[-1][0] - history[0][0]
        if span >= 0.8 * self.window and len(history) >= 5:
            seen = Counter(tid for _, _, running in history for tid in running)
            busy = sum(count >= 2 / 3 * len(history) for count in seen.values())
            cores = (history[-1][1] - history[0][1]) / span
            if busy > self.cpus:
                return (f"kept {busy} threads busy at once for {span:.0f} s (using {cores:.1f} CPU cores), "
                        f"more than the {self.cpus:g} allowed ({processes})")
        return ""
