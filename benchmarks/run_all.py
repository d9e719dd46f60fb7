"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/results/SUMMARY.md``.

``python benchmarks/run_all.py map unet`` runs only the scripts whose names contain one of the
words; ``--summary`` only rewrites SUMMARY.md from the JSON files already there.

Each benchmark script writes ``results/<name>.json`` holding at least ``target`` (text),
``measured`` (text) and ``passed`` (bool). Set ``LECTURE_QUICK=1`` for a smoke run.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if any(n in s.stem for n in names)]
    for script in scripts:
        print(f"== {script.name}", flush=True)
        runpy.run_path(str(script), run_name="__main__")
    write_summary()
    return 0


def write_summary() -> Path:
    """``results/SUMMARY.md``: one table row per ``results/*.json`` (full-mode results only)."""
    rows = ["| benchmark | target | measured | passed |", "| --- | --- | --- | --- |"]
    for path in sorted((HERE / "results").glob("*.json")):
        data = json.loads(path.read_text())
        rows.append(f"| {data.get('benchmark', path.stem)} | {data.get('target', '')} | "
                    f"{data.get('measured', '')} | {'yes' if data.get('passed') else 'no'} |")
    summary = HERE / "results" / "SUMMARY.md"
    summary.write_text("# Benchmark results\n\nWritten by `make bench` (`benchmarks/run_all.py`).\n\n"
                       + "\n".join(rows) + "\n")
    print(summary.read_text())
    return summary


if __name__ == "__main__":
    if sys.argv[1:] == ["--summary"]:  # only rebuild SUMMARY.md from the JSON files
        write_summary()
        raise SystemExit(0)
    raise SystemExit(main(sys.argv[1:]))
