"""Execute book notebooks one at a time (full mode unless LECTURE_QUICK=1) and time each.

    nice -n 10 .venv/bin/python scripts/time_notebooks.py                 # every page of the _toc
    nice -n 10 .venv/bin/python scripts/time_notebooks.py book/01_recap/04_ensembles.ipynb
    ... --json _build/notebook_times.json                                 # also write the numbers

Per notebook: wall seconds, and the kernel's CPU seconds (user + system, read in the kernel
itself after the last cell). On a busy shared machine the wall time says little; CPU seconds
divided by the threads the notebook can use (2 on the course's 2-core reference machine) is a
lower bound of the wall time it takes there and stays comparable when others load the machine.
Executes in the notebook's folder, like ``jupyter-book build``; outputs are not written back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from notebooks import ROOT, toc_notebooks  # scripts/notebooks.py, beside this file

_CPU_PROBE = """import json as _json, os as _os, resource as _resource
_self, _children = _resource.getrusage(_resource.RUSAGE_SELF), _resource.getrusage(_resource.RUSAGE_CHILDREN)
print(_json.dumps({"cpu": _self.ru_utime + _self.ru_stime + _children.ru_utime + _children.ru_stime,
                   "maxrss_mb": _self.ru_maxrss / 1024}))"""


def time_notebook(path: Path, timeout: int = 1800) -> dict:
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_CPU_PROBE))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.perf_counter()
    error = ""
    try:
        client.execute()
    except Exception as exc:  # a failing page is reported, the others still run
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
    wall = time.perf_counter() - started
    probe = {}
    for output in nb.cells[-1].get("outputs", []):
        if output.get("output_type") == "stream":
            probe = json.loads(output["text"].strip().splitlines()[-1])
    return {"notebook": str(path.relative_to(ROOT)), "wall_s": round(wall, 1), "cpu_s": round(probe.get("cpu", float("nan")), 1),
            "maxrss_mb": round(probe.get("maxrss_mb", float("nan")), 0), "error": error}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook of _toc.yml")
    parser.add_argument("--json", type=Path, help="append one JSON line per notebook to this file")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or toc_notebooks()
    mode = "quick" if os.environ.get("LECTURE_QUICK") == "1" else "full"
    print(f"| notebook ({mode} mode) | wall s | kernel CPU s | load avg at end |", flush=True)
    print("| --- | --- | --- | --- |", flush=True)
    for path in paths:
        row = time_notebook(path)
        row["mode"], row["loadavg"] = mode, round(os.getloadavg()[0], 1)
        print(f"| {row['notebook']} | {row['wall_s']:.0f} | {row['cpu_s']:.0f} | {row['loadavg']} |"
              + (f" ERROR {row['error']}" if row["error"] else ""), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
