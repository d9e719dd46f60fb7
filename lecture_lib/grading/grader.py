"""Grade submitted notebooks: student code in a sandboxed kernel, tests in the grader.

For each submission:

1. start a kernel in a fresh sandbox (``sandbox.py``) and run the submission's code cells
   there (nbclient), with a wall-clock limit per cell and per submission;
2. for each question, send one more cell that evaluates the question's ``EXTRACT``
   expressions and prints them as JSON (tensors as nested lists with dtype and shape);
3. kill the sandbox (the whole PID namespace) and wait until it is gone;
4. only then, in this process: parse the JSON (plain data only: numbers, strings, lists,
   dicts), rebuild tensors with the grader's own torch, and run the hidden tests
   ``test_*(answers)`` from the master. Nothing the student's kernel did to ``torch``,
   ``numpy`` or ``builtins`` exists here, and no object of theirs ever crosses over.

Scores come only from step 4. Whatever a submission prints (fake scores, fake JSON, fake
markers) is never read as a score; the answer line is delimited by a random nonce per cell
and, if a student forges it, all they can forge is their own answer.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
import subprocess
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .authoring import Exercise, Question, read_exercise
from .sandbox import Limits, Sandbox, SandboxUnavailable, sandbox_available

__all__ = [
    "QuestionResult",
    "SubmissionResult",
    "Answers",
    "AnswerError",
    "decode_answer",
    "grade_submission",
    "grade_folder",
    "write_results",
    "gradescope_results",
]

STATUSES = ("passed", "failed", "error", "timeout")
CSV_HEADER = ["submission", "question", "points", "max_points", "status"]
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024

# Sent to the student's kernel as the last cells. It runs *there*, so it is not trusted: it
# only has to be convenient for honest code. The grader re-validates everything it returns.
_EXTRACT_CELL = r'''
def __lecture_grade_extract(expressions, nonce):
    import json
    def encode(value, depth=0):
        if depth > 20:
            raise ValueError("the answer is nested too deeply")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, (list, tuple)):
            return [encode(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {str(k): encode(v, depth + 1) for k, v in value.items()}
        module = type(value).__module__.split(".")[0]
        if module == "torch" and hasattr(value, "tolist") and hasattr(value, "dtype"):
            value = value.detach().cpu()
            return {"__tensor__": "torch", "dtype": str(value.dtype).replace("torch.", ""),
                    "shape": list(value.shape), "data": value.tolist()}
        if module == "numpy" and hasattr(value, "tolist") and hasattr(value, "dtype"):
            if getattr(value, "ndim", 0) == 0:
                return encode(value.item(), depth + 1)
            return {"__tensor__": "numpy", "dtype": str(value.dtype), "shape": list(value.shape),
                    "data": value.tolist()}
        raise TypeError(f"cannot send a {type(value).__name__} to the grader: "
                        "answers must be numbers, strings, lists, dicts or tensors")
    answers = {}
    for name, expression in expressions.items():
        try:
            answers[name] = {"ok": encode(eval(expression, globals()))}
        except BaseException as err:
            answers[name] = {"error": f"{type(err).__name__}: {err}"[:500]}
    print(nonce + json.dumps(answers) + nonce)
__lecture_grade_extract(EXPRESSIONS, NONCE)
del __lecture_grade_extract
'''


class AnswerError(Exception):
    """The student's kernel could not produce this answer (the message says why)."""


class Answers(dict):
    """Decoded answers of one question; reading a missing or failed one raises ``AnswerError``."""

    def __init__(self, values: dict, errors: dict[str, str]):
        super().__init__(values)
        self.errors = dict(errors)

    def __missing__(self, key):
        raise AnswerError(self.errors.get(key, f"no answer named {key!r}"))


@dataclass
class QuestionResult:
    name: str
    points: float
    max_points: float
    status: str
    feedback: list[str] = field(default_factory=list)


@dataclass
class SubmissionResult:
    submission: str
    questions: list[QuestionResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def points(self) -> float:
        return round(sum(q.points for q in self.questions), 2)

    @property
    def max_points(self) -> float:
        return round(sum(q.max_points for q in self.questions), 2)


_TORCH_DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}


def decode_answer(value, depth: int = 0):
    """Turn plain JSON data into the values the hidden tests see (tensors rebuilt here).

    Only ``None``, bool, int, float, str, list and dict (str keys) are accepted; a dict with a
    ``__tensor__`` key becomes a ``torch.Tensor`` / ``numpy.ndarray`` built by the grader,
    after checking its dtype and that the data has the declared shape.
    """
    if depth > 40:
        raise AnswerError("answer nested too deeply")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) is list:
        return [decode_answer(v, depth + 1) for v in value]
    if type(value) is dict:
        if "__tensor__" in value:
            return _decode_tensor(value)
        return {str(k): decode_answer(v, depth + 1) for k, v in value.items()}
    raise AnswerError(f"unexpected {type(value).__name__} in an answer")


def _decode_tensor(value: dict):
    import numpy as np
    import torch

    kind, dtype, shape, data = (value.get(k) for k in ("__tensor__", "dtype", "shape", "data"))
    if kind not in ("torch", "numpy") or not isinstance(dtype, str) or dtype not in _TORCH_DTYPES:
        raise AnswerError(f"unsupported tensor answer ({kind!r}, dtype {dtype!r})")
    if type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
        raise AnswerError(f"bad tensor shape {shape!r}")
    if kind == "torch":
        tensor = torch.tensor(data, dtype=getattr(torch, dtype))
        if list(tensor.shape) != shape:
            raise AnswerError(f"tensor data has shape {list(tensor.shape)}, declared {shape}")
        return tensor
    if dtype == "bfloat16":
        raise AnswerError("numpy has no bfloat16")
    array = np.array(data, dtype=dtype)
    if list(array.shape) != shape:
        raise AnswerError(f"array data has shape {list(array.shape)}, declared {shape}")
    return array


def _load_hidden_tests(question: Question) -> list[tuple[str, str, callable]]:
    """(name, description, function) of each hidden test, from the master (trusted code)."""
    namespace: dict = {"__name__": f"hidden_tests_{question.name}"}
    exec(compile(question.hidden_source, f"<hidden tests {question.name}>", "exec"), namespace)
    tests = []
    for name, obj in namespace.items():
        if name.startswith("test_") and callable(obj):
            doc = (obj.__doc__ or "").strip()
            tests.append((name, doc.splitlines()[0] if doc else name, obj))
    return tests


def _parse_answers(text: str, nonce: str, limits: Limits) -> tuple[dict, dict]:
    matches = re.findall(re.escape(nonce) + r"(.*?)" + re.escape(nonce), text, flags=re.S)
    if len(matches) != 1:
        raise AnswerError("the kernel sent no answers" if not matches else "the kernel sent its answers twice")
    raw = matches[0]
    if len(raw) > limits.answer_kb * 1024:
        raise AnswerError(f"answers larger than {limits.answer_kb} kB")
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise AnswerError(f"answers are not valid JSON ({type(err).__name__})") from None
    if type(payload) is not dict:
        raise AnswerError("answers are not a JSON object")
    values, errors = {}, {}
    for name, item in payload.items():
        if type(item) is dict and set(item) == {"ok"}:
            try:
                values[name] = decode_answer(item["ok"])
            except (AnswerError, ValueError, TypeError, RecursionError, OverflowError) as err:
                errors[name] = f"could not read the answer: {err}"
        elif type(item) is dict and set(item) == {"error"} and type(item["error"]) is str:
            errors[name] = item["error"][:500]
        else:
            errors[name] = "malformed answer"
    return values, errors


def _score(question: Question, values: dict, errors: dict) -> QuestionResult:
    """Run the hidden tests here, in the grader, on decoded plain data."""
    result = QuestionResult(question.name, 0.0, question.points, "failed")
    wanted = list(question.extract)
    if wanted and all(name in errors and name not in values for name in wanted):
        result.status = "error"
        first = errors[wanted[0]]
        result.feedback.append(f"your code raised {first}" if ":" in first else first)
        return result
    tests = _load_hidden_tests(question)
    passed = 0
    for _, description, test in tests:
        answers = Answers({k: v for k, v in values.items() if k in question.extract}, errors)
        try:
            test(answers)
        except AnswerError as err:
            result.feedback.append(f"failed: {description} (no answer: {err})")
        except Exception:  # AssertionError or a crash on a wrong-typed answer: a failure either way
            result.feedback.append(f"failed: {description}")
        else:
            passed += 1
            result.feedback.append(f"passed: {description}")
    result.points = round(question.points * passed / len(tests), 2) if tests else 0.0
    result.status = "passed" if passed == len(tests) else "failed"
    return result


def _blank(exercise: Exercise, status: str, message: str) -> list[QuestionResult]:
    return [QuestionResult(q.name, 0.0, q.points, status, [message]) for q in exercise.questions.values()]


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
    import sys

    from jupyter_client.manager import AsyncKernelManager

    class _SandboxedKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments=None):
            argv = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file, *(extra_arguments or [])]
            return box.wrap(argv)

    km = _SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(box.comm / "k"))
    km.connection_file = str(box.comm / "kernel.json")
    km.shutdown_wait_time = 1.0
    return km


def grade_submission(exercise: Exercise, path: str | Path, limits: Limits | None = None,
                     isolate: bool = True, protected: list = ()) -> SubmissionResult:
    """Grade one notebook against ``exercise`` (see the module docstring for the steps)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    limits = limits or Limits()
    path = Path(path)
    name = path.stem
    started = time.monotonic()
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
        submitted = nbformat.read(path, as_version=4)
        code = [c.source for c in submitted.cells if c.cell_type == "code" and isinstance(c.source, str)]
    except Exception as err:  # unreadable notebook: nothing ran
        return SubmissionResult(name, _blank(exercise, "error", f"could not read the notebook: {err}"))

    notes: list[str] = []
    run_nb = nbformat.v4.new_notebook()
    run_nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    run_nb.cells = [nbformat.v4.new_code_cell(src) for src in code]
    box = Sandbox(limits, isolate=isolate, protected=protected)
    km = _kernel_manager(box)
    client = _client_class()(run_nb, km=km, timeout=int(limits.cell_timeout), allow_errors=True,
                             interrupt_on_timeout=False, startup_timeout=120, iopub_timeout=5,
                             record_timing=False, kernel_name="python3", shutdown_kernel="immediate")
    client.output_limit = limits.output_kb * 1024
    client.answer_limit = limits.answer_kb * 1024 + 4096
    client.answer_cells = set()
    raw: dict[str, tuple[str, str] | str] = {}  # question -> (text, nonce) or a status
    state = {"dead": None}  # why the kernel stopped: "timeout" or "error"
    deadline_hit = threading.Event()

    def on_deadline():
        deadline_hit.set()
        box.kill(box.process or getattr(km.provisioner, "process", None))

    timer = threading.Timer(limits.submission_timeout, on_deadline)
    timer.daemon = True

    def run(cell, index) -> str:
        """Execute one cell; "ok", "timeout" or "dead"."""
        try:
            client.execute_cell(cell, index)
            return "ok"
        except CellTimeoutError:
            return "timeout"
        except DeadKernelError:
            return "dead"
        except Exception as err:  # nbclient / zmq trouble: treat the kernel as gone
            notes.append(f"kernel failure: {type(err).__name__}: {err}"[:300])
            return "dead"

    def recover() -> bool:
        """After a cell timeout: interrupt, reconnect, and the kernel must answer a no-op soon.

        nbclient leaves the timed-out cell's output listener behind, which would swallow later
        outputs; fresh channels (a new kernel client on the same kernel) avoid that.
        """
        quick = int(min(5, max(2, limits.cell_timeout)))
        try:
            box.interrupt()
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
        run_nb.cells.append(probe)
        saved = client.timeout
        client.timeout = quick
        try:
            return run(probe, len(run_nb.cells) - 1) == "ok"
        finally:
            client.timeout = saved

    # The kernel's own stdout/stderr must not reach the instructor's terminal (fake messages);
    # stderr goes to a file that is read only when the kernel fails to start.
    kernel_log = open(box.base / "kernel.log", "wb")
    try:
        with client.setup_kernel(env=box.env(), cwd=str(box.base), stdout=subprocess.DEVNULL, stderr=kernel_log):
            box.started(getattr(km.provisioner, "process", None))
            timer.start()
            try:
                _run_all(client, run_nb, exercise, limits, run, recover, raw, state, notes, deadline_hit)
            finally:
                # Always, before nbclient's own shutdown: kill the whole PID namespace and
                # wait until it is gone. Scoring starts only after this.
                timer.cancel()
                box.kill()
    except Exception as err:  # the kernel did not even start
        notes.append(f"the kernel could not start or stopped: {type(err).__name__}: {err}"[:300])
        if box.process is None:
            kernel_log.flush()
            tail = (box.base / "kernel.log").read_bytes()[-300:].decode(errors="replace").strip()
            notes.append(f"kernel log: {tail}")
    finally:
        timer.cancel()
        box.kill(box.process or getattr(km.provisioner, "process", None))
        kernel_log.close()
        box.cleanup()
    if deadline_hit.is_set():
        notes.append(f"the submission ran longer than {limits.submission_timeout:g} s and was stopped")

    results = []
    for question in exercise.questions.values():
        got = raw.get(question.name, "error")
        if isinstance(got, str):
            message = {"timeout": "time limit reached before this question was checked",
                       "error": "the kernel stopped before this question was checked"}[got]
            results.append(QuestionResult(question.name, 0.0, question.points, got, [message]))
            continue
        try:
            values, errors = _parse_answers(got[0], got[1], limits)
            results.append(_score(question, values, errors))
        except AnswerError as err:
            results.append(QuestionResult(question.name, 0.0, question.points, "error", [str(err)]))
        except Exception as err:  # a bug in the hidden tests themselves: say so loudly
            results.append(QuestionResult(question.name, 0.0, question.points, "error",
                                          [f"grader error: {type(err).__name__}: {err}"]))
            notes.append(traceback.format_exc(limit=3))
    return SubmissionResult(name, results, notes, round(time.monotonic() - started, 1))



def _run_all(client, run_nb, exercise, limits, run, recover, raw, state, notes, deadline_hit) -> None:
    """Run the submission's cells, then one answer cell per question (fills ``raw``)."""
    for index, cell in enumerate(list(run_nb.cells)):
        outcome = run(cell, index)
        if outcome == "timeout":
            notes.append(f"code cell {index + 1} ran longer than {limits.cell_timeout:g} s and was interrupted")
            if not recover():
                state["dead"] = "timeout"
                break
        elif outcome == "dead":
            state["dead"] = "timeout" if deadline_hit.is_set() else "error"
            notes.append(f"the kernel stopped during code cell {index + 1}")
            break
    for question in exercise.questions.values():
        if state["dead"]:
            raw[question.name] = state["dead"]
            continue
        nonce = secrets.token_hex(16)
        source = f"EXPRESSIONS = {question.extract!r}\nNONCE = {nonce!r}\n{_EXTRACT_CELL}"
        cell = nbformat.v4.new_code_cell(source)
        run_nb.cells.append(cell)
        client.answer_cells.add(len(run_nb.cells) - 1)
        outcome = run(cell, len(run_nb.cells) - 1)
        if outcome == "ok":
            text = "".join(o.get("text", "") for o in cell.outputs
                           if o.get("output_type") == "stream" and o.get("name") == "stdout")
            raw[question.name] = (text, nonce)
        elif outcome == "timeout":
            raw[question.name] = "timeout"
            if not recover():
                state["dead"] = "timeout"
        else:
            state["dead"] = "timeout" if deadline_hit.is_set() else "error"
            raw[question.name] = state["dead"]


def grade_folder(master: str | Path, submissions: str | Path, out: str | Path, limits: Limits | None = None,
                 unsafe_no_sandbox: bool = False, workers: int = 2, log=print) -> list[SubmissionResult]:
    """Grade every ``*.ipynb`` in ``submissions`` (``workers`` at a time) and write the results.

    Raises ``SandboxUnavailable`` when isolation does not work here and ``unsafe_no_sandbox``
    is not set. Results are written only after every submission's sandbox is dead.
    """
    master, submissions, out = Path(master), Path(submissions), Path(out)
    exercise = read_exercise(master)
    if not submissions.is_dir():
        raise ValueError(f"submissions must be a folder, got {submissions}")
    if out.resolve() == submissions.resolve():
        raise ValueError("the output folder must differ from the submissions folder")
    isolate = True
    ok, why = sandbox_available()
    if not ok:
        if not unsafe_no_sandbox:
            raise SandboxUnavailable(
                f"cannot isolate submissions here: {why}. Refusing to run untrusted code; "
                "pass --unsafe-no-sandbox to grade without isolation (students could then read "
                "the hidden tests and the other submissions, and reach the network)."
            )
        log(f"WARNING: no sandbox ({why}); grading WITHOUT isolation as requested.")
        isolate = False
    paths = sorted(p for p in submissions.glob("*.ipynb") if p.is_file() and not p.is_symlink())
    protected = [master, submissions, out]
    results: list[SubmissionResult] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(grade_submission, exercise, p, limits, isolate, protected) for p in paths]
        for future in futures:
            result = future.result()
            log(f"{result.submission}: {result.points:g}/{result.max_points:g} ({result.seconds:g} s)")
            results.append(result)
    write_results(results, out)
    return results


def gradescope_results(result: SubmissionResult) -> dict:
    """Gradescope's ``results.json`` for one submission."""
    return {
        "score": result.points,
        "execution_time": result.seconds,
        "output": "\n".join(result.notes[:5]),
        "stdout_visibility": "hidden",
        "tests": [
            {
                "name": q.name,
                "score": q.points,
                "max_score": q.max_points,
                "status": "passed" if q.status == "passed" else "failed",
                "output": f"{q.status}\n" + "\n".join(q.feedback),
                "visibility": "visible",
            }
            for q in result.questions
        ],
    }


def _feedback(result: SubmissionResult) -> str:
    lines = [f"{result.submission}: {result.points:g} of {result.max_points:g} points", ""]
    for q in result.questions:
        lines.append(f"{q.name}: {q.points:g}/{q.max_points:g} ({q.status})")
        lines.extend(f"  {line}" for line in q.feedback)
    if result.notes:
        lines += ["", "Notes:"] + [f"  {n.splitlines()[0]}" for n in result.notes if n]
    return "\n".join(lines) + "\n"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "submission"


def write_results(results: list[SubmissionResult], out: str | Path) -> None:
    """``grades.csv``, ``gradescope/<submission>.json`` and ``feedback/<submission>.txt``."""
    out = Path(out)
    (out / "gradescope").mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    tmp = out / "grades.csv.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_HEADER)
        for result in results:
            for q in result.questions:
                writer.writerow([result.submission, q.name, f"{q.points:g}", f"{q.max_points:g}", q.status])
    tmp.replace(out / "grades.csv")
    for result in results:
        name = _safe_name(result.submission)
        (out / "gradescope" / f"{name}.json").write_text(json.dumps(gradescope_results(result), indent=2))
        (out / "feedback" / f"{name}.txt").write_text(_feedback(result))

