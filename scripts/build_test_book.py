"""Build the book from notebooks nbval has already executed (the strict build of `make test`).

    python scripts/build_test_book.py EXECUTED_DIR OUT_DIR

Copies the book's sources into OUT_DIR/src, puts the executed copies (written by the root
conftest.py while nbval ran, see LECTURE_EXECUTED_DIR) in place of the notebooks, and runs
``jupyter-book build -W -n --keep-going --all`` with execution switched off: every notebook is
executed once per `make test`, and any Sphinx warning still fails the build. The HTML ends up
in OUT_DIR/src/_build/html.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from notebooks import toc_notebooks  # scripts/notebooks.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["_config.yml", "_toc.yml", "intro.md", "references.bib", "_static", "_ext", "_vendor", "book"]


def main(executed_dir: str, out_dir: str) -> int:
    executed, out = Path(executed_dir).resolve(), Path(out_dir).resolve()
    stage = out / "src"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, stage / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy2(src, stage / name)
    missing = []
    for notebook in toc_notebooks():
        rel = notebook.relative_to(ROOT)
        done = executed / rel
        if not done.exists():
            missing.append(str(rel))
            continue
        shutil.copy2(done, stage / rel)
    if missing:
        print(f"no executed copy in {executed} of: {', '.join(missing)}\n"
              "run the notebooks through nbval first (make notebooks) with LECTURE_EXECUTED_DIR set",
              file=sys.stderr)
        return 1
    config = stage / "_config.yml"
    text, n = re.subn(r"(?m)^(\s*execute_notebooks:\s*)\S+", r'\g<1>"off"', config.read_text())
    if n != 1:
        print("could not switch off execution in _config.yml", file=sys.stderr)
        return 1
    config.write_text(text)
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    return subprocess.call([str(jupyter_book), "build", "-W", "-n", "--keep-going", "--all", str(stage)])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    raise SystemExit(main(*sys.argv[1:]))
