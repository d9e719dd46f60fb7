"""What grading one submission produces: points per question, notes, and why it failed to run.

Plain dataclasses that round-trip through JSON (``to_dict`` / ``from_dict``), so that a result
can be stored the moment a submission is graded and read back by a resumed run unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["STATUSES", "QuestionResult", "SubmissionResult"]

# passed: every hidden test passed; failed: some failed (partial points); error: the answer could
# not be computed; timeout: a time limit stopped the kernel before the question was checked.
STATUSES = ("passed", "failed", "error", "timeout")


@dataclass
class QuestionResult:
    """One question of one submission: ``points`` of ``max_points``, ``status`` one of STATUSES."""

    name: str
    points: float
    max_points: float
    status: str
    feedback: list[str] = field(default_factory=list)


@dataclass
class SubmissionResult:
    """One graded notebook.

    ``notes`` are messages for the instructor (a cell interrupted, the kernel stopped...);
    ``failure`` is one line saying why the notebook did not run to its end (empty when it did:
    a student's exception in a cell is a wrong answer, not a failure to run).
    """

    submission: str
    questions: list[QuestionResult]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    failure: str = ""

    @property
    def points(self) -> float:
        return round(sum(q.points for q in self.questions), 2)

    @property
    def max_points(self) -> float:
        return round(sum(q.max_points for q in self.questions), 2)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SubmissionResult:
        questions = [QuestionResult(**q) for q in data["questions"]]
        return cls(data["submission"], questions, list(data.get("notes", [])), float(data.get("seconds", 0.0)),
                   str(data.get("failure", "")))
