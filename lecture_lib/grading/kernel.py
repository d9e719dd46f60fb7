"""One submission's kernel run: start it in a fresh sandbox, execute, collect, time out, tear down.

``KernelRun(exercise, limits).run(code_cells)`` does, in order:

1. start a Jupyter kernel inside a new ``Sandbox`` (nbclient + a kernel manager whose command
   line is the sandbox's), with a watchdog on the sandbox's CPU and memory and a wall-clock
   deadline for the whole submission;
2. execute the submission's code cells, each under ``Limits.cell_timeout`` (a cell over its time
   is interrupted and the run goes on if the kernel answers again);
3. collect: one answer cell per question (``answers.extract_cell``) whose printed JSON,
   delimited by a fresh random nonce, is kept as text;
4. tear down: kill the sandbox's whole PID namespace and wait until it is gone.

It returns ``KernelOutput``: the text per question (or why there is none), notes for the
instructor and, when the notebook did not run to its end, one line saying why. Nothing here
interprets an answer: scoring happens afterwards, in the grader (``answers.score_question``).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import nbformat

from .answers import extract_cell
from .authoring import Exercise
from .sandbox import Limits, Sandbox
from .watchdog import Watchdog

__all__ = ["KernelRun", "KernelOutput", "kill_all"]

_RUNNING: set[Sandbox] = set()  # sandboxes of runs in progress in this process (for kill_all)

_WHY_NO_ANSWER = {"timeout": "time limit reached before this question was checked",
                  "error": "the kernel stopped before this question was checked"}


@dataclass
class KernelOutput:
    """What one kernel run leaves: ``answers[question]`` is ``(stdout text, nonce)`` or a status
    ("timeout" / "error") saying why there is no answer; ``failure`` is empty when all ran."""

    answers: dict[str, tuple[str, str] | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failure: str = ""


def _client_class():
    from nbclient import NotebookClient

    class _CappedClient(NotebookClient):
        """nbclient, but a cell keeps at most ``output_limit`` bytes of output (a flood is dropped)."""

        output_limit = 256 * 1024
        answer_limit = 4096 * 1024
        answer_cells: set = set()

        def output(self, outs, msg, display_id, cell_index):
            used = self.__dict__.setdefault("_output_bytes", {})
            size = len(json.dumps(msg.get("content", {}), default=str))
            used[cell_index] = used.get(cell_index, 0) + size
            limit = self.answer_limit if cell_index in self.answer_cells else self.output_limit
            if used[cell_index] > limit:
                return None
            return super().output(outs, msg, display_id, cell_index)

    return _CappedClient


def _kernel_manager(box: Sandbox):
    from jupyter_client.manager import AsyncKernelManager

    class _SandboxedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            # called after the connection file is written: the sandbox's user must read it
            box.share(self.connection_file)
            argv = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file, *(extra_arguments or [])]
            return box.wrap(argv)

    km = _SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(box.comm / "k"))
    km.connection_file = str(box.comm / "kernel.json")
    km.shutdown_wait_time = 1.0
    return km


class KernelRun:
    """Run one notebook's code in a sandboxed kernel and collect the answers to ``exercise``.

    Args:
        exercise: the master's questions (only their ``extract`` expressions are sent).
        limits: time, CPU, memory and output limits.
        isolate: False for ``--unsafe-no-sandbox`` (limits only, no namespaces).
        protected: paths that must not be visible inside the sandbox.
    """

    def __init__(self, exercise: Exercise, limits: Limits | None = None, isolate: bool = True,
                 protected: list = ()):
        self.exercise = exercise
        self.limits = limits or Limits()
        self.box = Sandbox(self.limits, isolate=isolate, protected=protected)
        self.out = KernelOutput()
        self.dead: str | None = None  # why the kernel is gone: "timeout" or "error"
        self.deadline_hit = threading.Event()
        self.watchdog = Watchdog(self.limits.cpus, self.limits.resident_mb, self._breach)
        self.notebook = None
        self.client = None

    def run(self, code: list[str]) -> KernelOutput:
        """Execute ``code`` (the submission's code cells) and collect every question's answer."""
        self.notebook = nbformat.v4.new_notebook()
        self.notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        self.notebook.cells = [nbformat.v4.new_code_cell(source) for source in code]
        self.client = self._client()
        timer = threading.Timer(self.limits.submission_timeout, self._deadline)
        timer.daemon = True
        # The kernel's own stdout/stderr must not reach the instructor's terminal (fake messages);
        # stderr goes to a file that is read only when the kernel fails to start.
        kernel_log = open(self.box.base / "kernel.log", "wb")
        _RUNNING.add(self.box)
        try:
            with self.client.setup_kernel(env=self.box.env(), cwd=str(self.box.base),
                                          stdout=subprocess.DEVNULL, stderr=kernel_log):
                self.box.started(self._launched())
                timer.start()
                self.watchdog.watch(self.box.roots)
                try:
                    self._execute()
                    self._collect()
                finally:
                    # Always, before nbclient's own shutdown: kill the whole PID namespace and
                    # wait until it is gone. Scoring starts only after this.
                    self._stop(timer)
        except Exception as err:  # the kernel did not even start, or nbclient failed around it
            self._start_failed(err, kernel_log)
        finally:
            self._stop(timer)
            _RUNNING.discard(self.box)
            kernel_log.close()
            self.box.cleanup()
        self._explain()
        return self.out

    # -- start and stop --------------------------------------------------------------------

    def _client(self):
        km = _kernel_manager(self.box)
        client = _client_class()(self.notebook, km=km, timeout=int(self.limits.cell_timeout), allow_errors=True,
                                 interrupt_on_timeout=False, startup_timeout=120, iopub_timeout=5,
                                 record_timing=False, kernel_name="python3", shutdown_kernel="immediate")
        client.output_limit = self.limits.output_kb * 1024
        client.answer_limit = self.limits.answer_kb * 1024 + 4096
        client.answer_cells = set()
        return client

    def _launched(self):
        return getattr(self.client.km.provisioner, "process", None)

    def _deadline(self) -> None:
        self.deadline_hit.set()
        self.box.kill(self.box.process or self._launched())

    def _breach(self, reason: str) -> None:
        self.out.notes.append(f"the sandbox was stopped: it {reason}")
        self.box.kill(self.box.process or self._launched())

    def _stop(self, timer: threading.Timer) -> None:
        timer.cancel()
        self.watchdog.stop()
        self.box.kill(self.box.process or (self._launched() if self.client else None))

    def _start_failed(self, err: Exception, kernel_log) -> None:
        self.out.notes.append(f"the kernel could not start or stopped: {type(err).__name__}: {err}"[:300])
        if self.box.process is None:
            kernel_log.flush()
            tail = (self.box.base / "kernel.log").read_bytes()[-300:].decode(errors="replace").strip()
            self.out.notes.append(f"kernel log: {tail}")
            self.out.failure = f"the kernel could not start: {type(err).__name__}: {err}"[:200]

    def _explain(self) -> None:
        """Say once, in ``failure``, why the notebook did not run to its end (if it did not)."""
        if self.deadline_hit.is_set():
            limit = f"{self.limits.submission_timeout:g} s"
            self.out.notes.append(f"the submission ran longer than {limit} and was stopped")
            self.out.failure = f"ran longer than {limit} (the time limit per submission)"
        elif self.watchdog.reason:
            self.out.failure = self.watchdog.reason
            # stopped for what it did: a question that timed out on the way was a symptom of it
            self.out.answers = {q: "error" if a == "timeout" else a for q, a in self.out.answers.items()}
        elif (self.dead or set(self.exercise.questions) - set(self.out.answers)) and not self.out.failure:
            last_words = ("the kernel", "code cell", "the answer cell")
            self.out.failure = next((n for n in reversed(self.out.notes) if n.startswith(last_words)),
                                    "the kernel stopped")

    # -- execute and collect ---------------------------------------------------------------

    def _cell(self, cell, index: int) -> str:
        """Execute one cell; "ok", "timeout" or "dead"."""
        from nbclient.exceptions import CellTimeoutError, DeadKernelError

        try:
            self.client.execute_cell(cell, index)
            return "ok"
        except CellTimeoutError:
            return "timeout"
        except DeadKernelError:
            return "dead"
        except Exception as err:  # nbclient / zmq trouble: treat the kernel as gone
            self.out.notes.append(f"kernel failure: {type(err).__name__}: {err}"[:300])
            return "dead"

    def _recover(self) -> bool:
        """After a cell timeout: interrupt, reconnect, and the kernel must answer a no-op soon.

        nbclient leaves the timed-out cell's output listener behind, which would swallow later
        outputs; fresh channels (a new kernel client on the same kernel) avoid that.
        """
        quick = int(min(5, max(2, self.limits.cell_timeout)))
        client = self.client
        try:
            self.box.interrupt()
            client.kc.stop_channels()
            client.kc = None
            saved_startup, client.startup_timeout = client.startup_timeout, quick
            try:
                client.start_new_kernel_client()
            finally:
                client.startup_timeout = saved_startup
        except Exception:
            return False
        probe = nbformat.v4.new_code_cell("pass")
        self.notebook.cells.append(probe)
        saved, client.timeout = client.timeout, quick
        try:
            return self._cell(probe, len(self.notebook.cells) - 1) == "ok"
        finally:
            client.timeout = saved

    def _gone(self) -> str:
        return "timeout" if self.deadline_hit.is_set() else "error"

    def _execute(self) -> None:
        """The submission's own cells, in order; stops when the kernel is gone."""
        for index, cell in enumerate(list(self.notebook.cells)):
            outcome = self._cell(cell, index)
            if outcome == "timeout":
                self.out.notes.append(f"code cell {index + 1} ran longer than {self.limits.cell_timeout:g} s "
                                      "and was interrupted")
                if not self._recover():
                    self.dead = "timeout"
                    self.out.notes.append(f"code cell {index + 1} ignored the interrupt; the kernel was stopped")
                    return
            elif outcome == "dead":
                self.dead = self._gone()
                self.out.notes.append(f"the kernel stopped during code cell {index + 1}")
                return

    def _collect(self) -> None:
        """One answer cell per question; a question after the kernel died gets its status."""
        for question in self.exercise.questions.values():
            if self.dead:
                self.out.answers[question.name] = self.dead
                continue
            nonce = secrets.token_hex(16)
            cell = nbformat.v4.new_code_cell(extract_cell(question, nonce))
            self.notebook.cells.append(cell)
            index = len(self.notebook.cells) - 1
            self.client.answer_cells.add(index)
            outcome = self._cell(cell, index)
            if outcome == "ok":
                text = "".join(o.get("text", "") for o in cell.outputs
                               if o.get("output_type") == "stream" and o.get("name") == "stdout")
                self.out.answers[question.name] = (text, nonce)
            elif outcome == "timeout":
                self.out.answers[question.name] = "timeout"
                if not self._recover():
                    self.dead = "timeout"
                    self.out.notes.append(f"the answer cell of {question.name} ignored the interrupt; "
                                          "the kernel was stopped")
            else:
                self.dead = self._gone()
                self.out.answers[question.name] = self.dead
                self.out.notes.append(f"the kernel stopped while answering {question.name}")


def kill_all() -> None:
    """Kill the sandbox of every run in progress in this process (before exiting on Ctrl-C)."""
    for box in list(_RUNNING):
        box.kill(timeout=2.0)


def why_no_answer(status: str) -> str:
    """Feedback line for a question the kernel could not answer ("timeout" or "error")."""
    return _WHY_NO_ANSWER[status]
