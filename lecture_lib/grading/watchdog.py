"""Watch one sandbox from outside and stop it when it takes more than its share of the machine.

The per-process limits (``prlimit`` in ``sandbox.py``) cannot bound what a submission does with
*many* processes: 60 busy children take most of the CPU from a submission graded next to it, and
60 children that each fill a few GB exhaust the memory of the machine. Linux cgroups would bound
a group of processes, but they are rarely writable where graders run (containers, Gradescope),
so this thread measures the sandbox as a whole instead, a few times a second:

- its processes: every descendant of the sandbox's first process (the PID namespace's init, to
  which orphans are reparented, so a double fork does not escape the walk);
- CPU, three ways, over the last ``window`` seconds; over its limit in any and the sandbox is
  killed:
  the CPU cores its processes used (CPU seconds per second, over ``Limits.cpus``), which catches
  many busy threads in one process on a machine with idle cores; how many of its processes were
  busy, i.e. had a thread running or ready to run in at least two thirds of the samples (over
  ``Limits.cpus``), which catches many busy processes on a machine where they get little CPU
  each (60 spinning children are 60 processes taking turns with the neighbouring submission,
  whatever CPU they get); and how many of its threads were busy (over ``Limits.cpus`` plus
  ``KERNEL_THREADS``), which catches many busy threads in one process on a loaded machine.
  An honest notebook is never stopped for CPU, however loaded the machine: the sandbox sets
  ``OMP_NUM_THREADS=1`` (and MKL's, OpenBLAS's), so torch and numpy compute in one thread; one
  thread never uses more than one core; a kernel is one process; and its helper threads (ZeroMQ,
  the output thread: about 3 % of the main thread's CPU even while a cell prints without
  pause) are allowed for, however long they wait for a core. A notebook that asks for more
  (``torch.set_num_threads(4)``, busy ``DataLoader`` workers) needs a larger ``--cpus``;
- memory: their proportional anonymous memory (``Pss_Anon``, pages shared after a fork counted
  once); more than ``Limits.resident_mb``, and the sandbox is killed.

A submission killed here gets the reason in its feedback and in the run's summary. What this
cannot do: act faster than its poll interval (``interval``, 0.2 s) and window (3 s; longer
when polls are slow, as a CPU verdict takes ``MIN_SAMPLES`` polls), or stop a submission from
using its allowed share; with ``--jobs N`` on fewer than ``N * cpus`` idle
cores, submissions still share the CPU, which only matters for work close to the time limits.
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
_PAGE_KB = (os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096) // 1024
# Samples a CPU verdict needs: when polls are slow (a loaded machine, many processes), the
# window stretches to hold this many rather than never holding enough.
MIN_SAMPLES = 5
# Threads of a kernel besides the one that runs the cells (ZeroMQ's I/O thread, the output
# thread, ...), allowed to be busy on top of ``cpus``: on a loaded machine they can wait in the
# run queue ("R") a long time for the little CPU they need.
KERNEL_THREADS = 2


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


def _resident_anon_kb(pid: int) -> int:
    """Resident anonymous memory of a process in kB, pages shared after a fork counted in full
    (``statm``: resident - shared). Cheap: no walk of the address space, no lock on it."""
    try:
        with open(f"/proc/{pid}/statm") as handle:
            _, resident, shared = (int(v) for v in handle.read().split()[:3])
        return max(0, resident - shared) * _PAGE_KB
    except (OSError, ValueError):
        return 0


def _anon_kb(pid: int) -> int:
    """Anonymous memory of a process in kB, pages shared with other processes split between them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss_Anon:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return _resident_anon_kb(pid)  # older kernels


def sandbox_usage(roots: list[int], resident_kb: float = 0.0) -> dict[int, tuple[float, int, frozenset[int], int]]:
    """pid -> (CPU seconds, threads, ids of running or runnable threads, anonymous kB) of
    ``roots`` and all their descendants.

    Anonymous memory is first read the cheap way, counting pages shared after a fork in every
    process that shares them; only if that sum is over ``resident_kb`` is it read again with those
    pages split (``Pss_Anon``: a walk of each address space, slow for processes that imported
    torch, and blocked while they fork), so that a sandbox is never stopped on the cheap figure.
    """
    usage: dict[int, tuple[float, int, frozenset[int], int]] = {}
    frontier = list(roots)
    while frontier and len(usage) < 10_000:
        pid = frontier.pop()
        if pid in usage:
            continue
        stat = _cpu_and_threads(pid)
        if stat is None:
            continue
        usage[pid] = (*stat, _resident_anon_kb(pid))
        frontier.extend(_children(pid))
    if sum(u[3] for u in usage.values()) > resident_kb:
        usage = {pid: (*u[:3], _anon_kb(pid)) for pid, u in usage.items()}
    return usage


class Watchdog:
    """A thread that polls one sandbox's processes and calls ``on_breach(reason)`` once.

    Args:
        cpus: CPU cores the sandbox may use, and processes it may keep busy (running or
            runnable in 2/3 of the samples), over the last ``window`` seconds; threads it may
            keep busy: ``cpus + KERNEL_THREADS``.
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
        # (time, CPU seconds so far, ids of running processes, ids of running threads)
        history: deque[tuple[float, float, frozenset[int], frozenset[int]]] = deque()
        # CPU seconds of every process seen so far: one missed by a sample (its parent's children
        # list is read while it forks) is not counted again from zero when it is seen next
        last: dict[int, float] = {}
        used = 0.0
        while not self._stop.wait(self.interval):
            usage = sandbox_usage(roots(), self.resident_mb * 1024)
            used += sum(max(0.0, u[0] - last.get(pid, 0.0)) for pid, u in usage.items())
            last.update((pid, u[0]) for pid, u in usage.items())
            now = time.monotonic()
            history.append((now, used, frozenset(pid for pid, u in usage.items() if u[2]),
                            frozenset().union(*(u[2] for u in usage.values()))))
            # the last ``window`` seconds, but at least MIN_SAMPLES polls however slow they were
            while len(history) > MIN_SAMPLES and now - history[1][0] >= self.window:
                history.popleft()
            reason = self._check(usage, history)
            if reason:
                self.reason = reason
                self.on_breach(reason)
                return

    def _check(self, usage: dict[int, tuple[float, int, frozenset[int], int]], history) -> str:
        memory_mb = sum(u[3] for u in usage.values()) / 1024
        self.peak_mb = max(self.peak_mb, memory_mb)
        processes = f"{len(usage)} processes, {sum(u[1] for u in usage.values())} threads"
        if memory_mb > self.resident_mb:
            return f"used {memory_mb:.0f} MB of memory, more than the {self.resident_mb:g} MB allowed ({processes})"
        span = history[-1][0] - history[0][0]
        if span >= 0.8 * self.window and len(history) >= MIN_SAMPLES:
            busy = _busy(entry[2] for entry in history)
            threads = _busy(entry[3] for entry in history)
            cores = (history[-1][1] - history[0][1]) / span
            if busy > self.cpus or cores > self.cpus or threads > self.cpus + KERNEL_THREADS:
                return (f"kept {busy} processes busy using {cores:.1f} CPU cores ({threads} busy threads) for "
                        f"{span:.0f} s, more than the {self.cpus:g} allowed ({processes})")
        return ""


def _busy(samples) -> int:
    """How many ids are in at least two thirds of the samples (sets of running ids)."""
    samples = list(samples)
    seen = Counter(i for running in samples for i in running)
    return sum(count >= 2 / 3 * len(samples) for count in seen.values())
