"""Course conventions every notebook and the book configuration must keep."""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("course_notebooks", ROOT / "scripts" / "notebooks.py")
notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebooks)

ALL = notebooks.all_notebooks()


def test_there_are_notebooks():
    assert any(p.match("book/06_localization/01_iou.ipynb") for p in ALL)


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_first_cell_is_the_colab_setup_cell(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "code"
    assert first.source == notebooks.setup_source(), (
        f"{path.name}: the first cell must be the Colab setup cell for {notebooks.repository_url()} "
        "(python scripts/notebooks.py set-repository URL rewrites it)")


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    with_outputs = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.outputs]
    assert not with_outputs, f"{path.name}: cells {with_outputs} have outputs (python scripts/notebooks.py strip)"


@pytest.mark.parametrize("path", ALL, ids=lambda p: str(p.relative_to(ROOT)))
def test_valid_nbformat_with_cell_ids(path):
    """nbformat 4.5 wants an id on every cell (Jupyter adds them; hand-written cells may lack them)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert (raw["nbformat"], raw["nbformat_minor"]) >= (4, 5), f"{path.name}: nbformat {raw['nbformat']}.{raw['nbformat_minor']}"
    missing = [i for i, c in enumerate(raw["cells"]) if "id" not in c]
    assert not missing, f"{path.name}: cells {missing} have no id (python scripts/notebooks.py strip adds them)"
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))


@pytest.mark.parametrize("path", [p for p in ALL if p.parts[-3] == "book"], ids=lambda p: p.name)
def test_one_title_and_no_skipped_heading_levels(path):
    nb = nbformat.read(path, as_version=4)
    # headings outside fenced code blocks (a "# comment" in a ```bash block is no heading)
    prose = [re.sub(r"(?ms)^(```|~~~).*?^\1", "", c.source) for c in nb.cells if c.cell_type == "markdown"]
    levels = [len(m.group(1)) for text in prose for m in re.finditer(r"^(#{1,6}) ", text, flags=re.M)]
    assert levels[:1] == [1] and levels.count(1) == 1, f"{path.name}: needs exactly one '# Title' first"
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, f"{path.name}: heading level jumps from {before} to {after}"


def test_every_book_notebook_is_in_the_toc():
    listed = set(notebooks.toc_notebooks())
    for path in ALL:
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "book":
            assert path in listed, f"{rel} is not in _toc.yml"
    assert yaml.safe_load((ROOT / "_toc.yml").read_text())["root"] == "intro"


def test_chapter_folders_are_numbered_in_toc_order():
    chapters = re.findall(r"file:\s*book/(\d\d)_", (ROOT / "_toc.yml").read_text())
    assert chapters == sorted(chapters) and len(chapters) == len(set(chapters))


def test_repository_url_is_one_place():
    url = notebooks.repository_url()
    assert url.startswith("https://github.com/")
    assert "git+{REPOSITORY}.git" in notebooks.setup_source()
