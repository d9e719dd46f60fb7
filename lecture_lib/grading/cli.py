"""``lecture-grade``: student copies, sandboxed grading, Gradescope autograder zips.

    lecture-grade student exercises/03_segmentation.ipynb student/
    lecture-grade grade exercises/03_segmentation.ipynb submissions/ --out grades/ --jobs 2
    lecture-grade gradescope exercises/03_segmentation.ipynb --out autograder_03_segmentation.zip

(also ``python -m lecture_lib.grading.cli ...``). Exit status: 0 done, 1 refused or failed,
130 interrupted (Ctrl-C; the grades stored so far are kept: run the same command again).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

__all__ = ["main", "build_gradescope_zip"]

_SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image.
set -euo pipefail
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv python3-pip util-linux
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
# CPU wheels: no CUDA download on the grading machine
/autograder/venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu
/autograder/venv/bin/pip install nbclient nbformat ipykernel scikit-learn /autograder/source/lecture_lib_src
/autograder/venv/bin/python -m ipykernel install --sys-prefix --name python3
"""

_RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission: /autograder/submission holds the student's files,
# /autograder/results/results.json is what Gradescope reads.
set -uo pipefail
cd /autograder/source
/autograder/venv/bin/lecture-grade grade "{master}" /autograder/submission \
    --out /autograder/results/lecture-grade --results-json /autograder/results/results.json {extra}
"""


def build_gradescope_zip(master: str | Path, out: str | Path | None = None, unsafe_no_sandbox: bool = False) -> Path:
    """Write the Gradescope autograder zip: setup.sh, run_autograder, the master, lecture_lib."""
    from .authoring import read_exercise

    master = Path(master)
    read_exercise(master)  # refuse to package a master that does not parse
    out = Path(out) if out else Path(f"autograder_{master.stem}.zip")
    package = Path(__file__).resolve().parent.parent
    project = package.parent
    extra = "--unsafe-no-sandbox" if unsafe_no_sandbox else ""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        def add_text(name: str, text: str, mode: int = 0o644) -> None:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)

        add_text("setup.sh", _SETUP_SH, 0o755)
        add_text("run_autograder", _RUN_AUTOGRADER.format(master=master.name, extra=extra), 0o755)
        archive.write(master, master.name)
        for name in ("pyproject.toml", "requirements.txt", "README.md"):
            source = project / name
            if source.exists():
                archive.write(source, f"lecture_lib_src/{name}")
            elif name == "README.md":
                add_text("lecture_lib_src/README.md", "lecture_lib\n")
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" not in path.parts:
                archive.write(path, f"lecture_lib_src/{path.relative_to(project)}")
    return out


def _results_json(results, target: Path) -> None:
    """Gradescope's results.json for the single submission of a Gradescope run."""
    from .grader import gradescope_results

    if len(results) == 1:
        payload = gradescope_results(results[0])
    else:
        payload = {"score": 0.0, "output": f"expected exactly one .ipynb notebook in the submission, found {len(results)}",
                   "tests": []}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=2))


def _grade(args) -> int:
    from .grader import NoNotebooks, grade_folder
    from .sandbox import Limits

    limits = Limits(cell_timeout=args.cell_timeout, submission_timeout=args.timeout, cpu_seconds=args.cpu,
                    memory_mb=args.memory_mb, resident_mb=args.resident_mb, cpus=args.cpus)
    try:
        results = grade_folder(args.master, args.submissions, args.out, limits,
                               unsafe_no_sandbox=args.unsafe_no_sandbox, jobs=args.jobs, regrade=args.regrade)
    except NoNotebooks:
        if not args.results_json:
            raise
        results = []  # a Gradescope upload without a notebook: the student sees why in results.json
    if args.results_json:
        _results_json(results, args.results_json)
    print(f"graded {len(results)} submissions: {args.out / 'grades.csv'}, summary in {args.out / 'summary.txt'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lecture-grade", description="Student copies, sandboxed grading and Gradescope autograder zips for the course exercises.")
    sub = parser.add_subparsers(dest="command", required=True)

    student = sub.add_parser("student", help="write the student copy of a master notebook")
    student.add_argument("master", type=Path)
    student.add_argument("outdir", type=Path)

    grade = sub.add_parser("grade", help="grade every *.ipynb of a folder in sandboxes")
    grade.add_argument("master", type=Path)
    grade.add_argument("submissions", type=Path)
    grade.add_argument("--out", type=Path, required=True, help="folder for grades.csv, summary.txt, gradescope/, feedback/ and state/ (the stored grades)")
    grade.add_argument("--jobs", "-j", type=int, default=2,
                       help="submissions graded at once, each in its own sandbox (default 2; about one per CPU core)")
    grade.add_argument("--workers", type=int, dest="jobs", help=argparse.SUPPRESS)  # the old name of --jobs
    grade.add_argument("--regrade", action="store_true",
                       help="grade everything again, ignoring the grades stored in OUT/state by earlier runs")
    grade.add_argument("--cell-timeout", type=float, default=60, help="wall-clock seconds per cell (default 60)")
    grade.add_argument("--timeout", type=float, default=300, help="wall-clock seconds per submission (default 300)")
    grade.add_argument("--cpu", type=int, default=300, help="CPU seconds per process of a submission (default 300)")
    grade.add_argument("--memory-mb", type=int, default=6144,
                       help="address space per process in MB (default 6144; torch alone maps ~3.5 GB)")
    grade.add_argument("--resident-mb", type=int, default=4096,
                       help="memory of all a submission's processes together, in MB (default 4096)")
    grade.add_argument("--cpus", type=float, default=1.5,
                       help="CPU cores a submission may use, and processes (threads: 2 more) it may keep busy, over 3 s "
                            "(default 1.5)")
    grade.add_argument("--results-json", type=Path, help="also write Gradescope's results.json (one submission)")
    grade.add_argument("--unsafe-no-sandbox", action="store_true",
                       help="grade without isolation when the sandbox is unavailable (students can then cheat)")

    gradescope = sub.add_parser("gradescope", help="build the Gradescope autograder zip")
    gradescope.add_argument("master", type=Path)
    gradescope.add_argument("--out", type=Path, help="zip path (default autograder_<name>.zip)")
    gradescope.add_argument("--unsafe-no-sandbox", action="store_true",
                            help="let run_autograder grade without isolation (when Gradescope's container has no user namespaces)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "student":
            from .authoring import write_student_copy

            path = write_student_copy(args.master, args.outdir)
            print(f"wrote {path}")
        elif args.command == "grade":
            return _grade(args)
        elif args.command == "gradescope":
            path = build_gradescope_zip(args.master, args.out, args.unsafe_no_sandbox)
            print(f"wrote {path} (upload it as the autograder of a Gradescope programming assignment)")
    except KeyboardInterrupt:
        from .kernel import kill_all

        kill_all()  # the submissions being graded: their grades are not stored, the next run redoes them
        print(f"\nlecture-grade {args.command}: interrupted. The grades finished so far are stored; run the same "
              "command again to grade the rest.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)  # at once, without waiting for the grading threads
    except Exception as err:  # one clear line for the instructor, non-zero exit
        print(f"lecture-grade {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
