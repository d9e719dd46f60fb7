"""Course notebook conventions: the Colab setup cell, new notebooks, the repository URL.

    python scripts/notebooks.py new book/05_segmentation/02_fcn.ipynb "Fully convolutional networks"
    python scripts/notebooks.py set-repository https://github.com/YOU/YOUR-FORK
    python scripts/notebooks.py strip        # remove outputs from every committed notebook
    python scripts/notebooks.py strip book/05_segmentation/02_fcn.ipynb   # ... or from the ones named

Every chapter and exercise notebook starts with the same setup cell (tested in
tests/test_notebook_layout.py); its repository URL is the one in _config.yml.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbformat.corpus.words import generate_corpus_id

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "_config.yml"
NOTEBOOK_DIRS = ("book", "exercises")
SETUP_MARKER = "# Colab setup"

SETUP_TEMPLATE = '''# Colab setup: on Google Colab, install the course library from its repository; elsewhere, nothing.
import subprocess
import sys

REPOSITORY = "{url}"
if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", f"git+{{REPOSITORY}}.git"], check=True)'''


def repository_url() -> str:
    match = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", CONFIG.read_text(), flags=re.M)
    if not match:
        raise ValueError(f"{CONFIG} has no repository.url")
    return match.group(1)


def setup_source(url: str | None = None) -> str:
    return SETUP_TEMPLATE.format(url=url or repository_url())


def setup_cell(url: str | None = None):
    # Hidden in the rendered book (readers need no install), present in Colab / JupyterLab.
    return nbformat.v4.new_code_cell(setup_source(url), metadata={"tags": ["remove-cell"]})


def new_notebook(path: str | Path, title: str) -> Path:
    path = ROOT / path
    if path.exists():
        raise FileExistsError(f"{path} exists")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        setup_cell(),
        nbformat.v4.new_markdown_cell(f"# {title}\n"),
        nbformat.v4.new_code_cell("import torch\n\nimport lecture_lib"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def all_notebooks() -> list[Path]:
    return sorted(p for d in NOTEBOOK_DIRS for p in (ROOT / d).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)


def toc_notebooks() -> list[Path]:
    """The notebooks that _toc.yml puts in the book (by file entry or by glob)."""
    toc = (ROOT / "_toc.yml").read_text()
    files = set(re.findall(r"file:\s*(\S+)", toc))
    globs = re.findall(r"glob:\s*(\S+)", toc)
    chosen = []
    for notebook in sorted((ROOT / "book").rglob("*.ipynb")):
        stem = Path(notebook.relative_to(ROOT).with_suffix(""))
        if ".ipynb_checkpoints" not in notebook.parts and (str(stem) in files or any(stem.match(g) for g in globs)):
            chosen.append(notebook)
    return chosen


def set_repository(url: str) -> None:
    """Point _config.yml and every notebook's setup cell at ``url`` (for a fork)."""
    url = url.rstrip("/").removesuffix(".git")
    text = CONFIG.read_text()
    CONFIG.write_text(re.sub(r"(^repository:\s*\n\s+url:\s*)\S+", rf"\g<1>{url}", text, flags=re.M))
    for path in all_notebooks():
        nb = nbformat.read(path, as_version=4)
        nb.cells[0].source = setup_source(url)
        nbformat.write(nb, path)


def strip_outputs(paths: list[str] | None = None) -> None:
    """Remove outputs, execution counts and widget state from ``paths`` (default: every notebook)."""
    for path in [ROOT / p for p in paths] if paths else all_notebooks():
        if not path.is_file():
            raise SystemExit(f"strip: no notebook at {path}")
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            if "id" not in cell:  # a cell written by hand or by a script: nbformat 4.5 wants an id
                cell.id = generate_corpus_id()
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, path)


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["help"]
    if command == "new" and len(args) == 2:
        print(new_notebook(*args))
    elif command == "set-repository" and len(args) == 1:
        set_repository(args[0])
    elif command == "strip":
        strip_outputs(args)
    else:
        print(__doc__)
        raise SystemExit(2)
