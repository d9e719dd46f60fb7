"""Answers across the sandbox wall, and the hidden tests that score them.

The grader asks the student's kernel for each question's ``EXTRACT`` expressions with one extra
cell (``extract_cell``). That cell runs *in the kernel*, so it is not trusted: it only has to be
convenient for honest code. What comes back is text; ``parse_answers`` reads it as plain JSON
(numbers, strings, lists, dicts), ``decode_answer`` rebuilds tensors with the grader's own torch,
and ``score_question`` runs the hidden tests ``test_*(answers)`` from the master, here, in the
grader. No object of the student's ever reaches a test, and nothing they did to ``torch``,
``numpy`` or ``builtins`` exists in this process.
"""

from __future__ import annotations

import json
import re

from .authoring import Question
from .results import QuestionResult

__all__ = ["AnswerError", "Answers", "decode_answer", "extract_cell", "parse_answers", "score_question"]

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

_TORCH_DTYPES = {"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}


class AnswerError(Exception):
    """The student's kernel could not produce this answer (the message says why)."""


class Answers(dict):
    """Decoded answers of one question; reading a missing or failed one raises ``AnswerError``."""

    def __init__(self, values: dict, errors: dict[str, str]):
        super().__init__(values)
        self.errors = dict(errors)

    def __missing__(self, key):
        raise AnswerError(self.errors.get(key, f"no answer named {key!r}"))


def extract_cell(question: Question, nonce: str) -> str:
    """The cell sent to the kernel: evaluates ``question.extract``, prints JSON between nonces."""
    return f"EXPRESSIONS = {question.extract!r}\nNONCE = {nonce!r}\n{_EXTRACT_CELL}"


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


def parse_answers(text: str, nonce: str, answer_kb: int) -> tuple[dict, dict]:
    """(values, errors) from the answer cell's stdout: exactly one JSON object between nonces."""
    matches = re.findall(re.escape(nonce) + r"(.*?)" + re.escape(nonce), text, flags=re.S)
    if len(matches) != 1:
        raise AnswerError("the kernel sent no answers" if not matches else "the kernel sent its answers twice")
    raw = matches[0]
    if len(raw) > answer_kb * 1024:
        raise AnswerError(f"answers larger than {answer_kb} kB")
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


def score_question(question: Question, values: dict, errors: dict) -> QuestionResult:
    """Run the hidden tests here, in the grader, on decoded plain data; points split evenly."""
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
