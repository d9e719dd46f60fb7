"""Grades kept as they finish, so that a grading run can be killed and started again.

Each graded submission is one file, ``OUT/state/<sha256 of the notebook's bytes>.json``, written
atomically (temporary file, ``fsync``, rename) the moment its sandbox is gone. A run started
again reads these files and grades only the notebooks whose content has no stored grade yet: a
renamed file keeps its grade, an edited one is graded again, and two identical notebooks are
graded once.

A stored grade counts only for the same master notebook (its bytes' hash) and the same limits:
change either and the affected submissions are graded again. ``--regrade`` ignores them all.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from .report import atomic_write
from .results import SubmissionResult
from .sandbox import Limits

__all__ = ["ResultStore", "content_hash"]

FORMAT = 1


def content_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ResultStore:
    """Stored grades of one master under fixed limits, in ``folder``, keyed by content hash."""

    def __init__(self, folder: str | Path, master: str | Path, limits: Limits):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.context = {"format": FORMAT, "master_sha256": content_hash(master), "limits": asdict(limits)}

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str, name: str) -> SubmissionResult | None:
        """The stored grade of the notebook with hash ``key``, reported under ``name``; None when
        there is none (or it was made with another master or other limits, or is unreadable)."""
        try:
            data = json.loads(self._path(key).read_text())
            if data.get("context") != self.context:
                return None
            result = SubmissionResult.from_dict(data["result"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        result.submission = name
        return result

    def put(self, key: str, result: SubmissionResult) -> None:
        """Store one grade (atomically: a killed grader leaves the old file or the new one)."""
        payload = {"context": self.context, "sha256": key, "result": result.to_dict()}
        atomic_write(self._path(key), json.dumps(payload, indent=1))

    def stale(self) -> int:
        """How many stored files belong to another master or other limits (graded again if needed)."""
        count = 0
        for path in self.folder.glob("*.json"):
            try:
                count += json.loads(path.read_text()).get("context") != self.context
            except (OSError, ValueError, AttributeError):
                count += 1
        return count
