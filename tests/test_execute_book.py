"""scripts/execute_book.py: pages run in parallel into the cache that MyST-NB's build reads, in
their own folder with one thread; a cached page is skipped, a failing page is reported, and the
executed pages (glue outputs included) can be exported for ``scripts/glue.py compare``."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache
from nbformat.v4 import new_code_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))  # the script imports scripts/notebooks.py as a sibling
spec = importlib.util.spec_from_file_location("execute_book", ROOT / "scripts" / "execute_book.py")
execute_book = importlib.util.module_from_spec(spec)
sys.modules["execute_book"] = execute_book  # the worker processes get _execute by this name
spec.loader.exec_module(execute_book)
sys.path.remove(str(ROOT / "scripts"))

GOOD = """import os
import torch
from myst_nb import glue
glue("threads", f"{os.environ['LECTURE_THREADS']} {os.environ['OMP_NUM_THREADS']} {torch.get_num_threads()}", display=False)
glue("folder", os.path.basename(os.getcwd()), display=False)"""


def _notebook(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(source)]), path)
    return path


def test_pages_run_in_parallel_into_the_build_cache_and_export_with_their_glue(tmp_path):
    good = _notebook(tmp_path / "chapter_a" / "good.ipynb", GOOD)
    bad = _notebook(tmp_path / "chapter_b" / "bad.ipynb", "raise ValueError('boom')")
    cache_path = tmp_path / "cache"

    report = execute_book.execute([good, bad], jobs=2, timeout=120, cache_path=cache_path)
    assert report[str(good)]["status"] == "executed" and report[str(good)]["seconds"] > 0
    assert report[str(bad)] == {"status": "failed", "seconds": report[str(bad)]["seconds"],
                                "error": "CellExecutionError"}

    # what MyST-NB's cache mode does at build time: match the source notebook to the cache
    record = get_cache(str(cache_path)).match_cache_notebook(nbformat.read(good, as_version=4))
    assert record.data["execution_seconds"] == pytest.approx(report[str(good)]["seconds"])
    with pytest.raises(KeyError):
        get_cache(str(cache_path)).match_cache_notebook(nbformat.read(bad, as_version=4))

    again = execute_book.execute([good], jobs=2, timeout=120, cache_path=cache_path)
    assert again[str(good)]["status"] == "cached"

    out = tmp_path / "export"
    assert execute_book.export([good, bad], out, cache_path=cache_path) == 1
    values = execute_book_glue(out / "good.ipynb")
    assert values == {"threads": "'1 1 1'", "folder": "'chapter_a'"}  # one thread; run in its own folder


def execute_book_glue(path: Path) -> dict:
    spec = importlib.util.spec_from_file_location("glue_script", ROOT / "scripts" / "glue.py")
    glue_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(glue_script)
    return glue_script.glued_values(nbformat.read(path, as_version=4))


def test_bad_arguments_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        execute_book.execute([], jobs=0, cache_path=tmp_path / "cache")
    with pytest.raises(SystemExit):
        execute_book.main([str(tmp_path / "missing.ipynb")])
    assert "no such notebook" in capsys.readouterr().err


def test_a_hung_or_endless_page_has_its_kernel_stopped_and_is_retried_once(tmp_path, capsys):
    idle = _notebook(tmp_path / "idle.ipynb", "import time\ntime.sleep(300)")   # like a lost reply: no CPU
    busy = _notebook(tmp_path / "busy.ipynb", "while True:\n    pass")
    report = execute_book.execute([idle], jobs=1, page_timeout=600, idle_timeout=6, cache_path=tmp_path / "cache")
    assert report[str(idle)]["error"] == "PageTimeout" and report[str(idle)]["seconds"] < 60
    out = capsys.readouterr().out
    assert "PageTimeout after" in out and "retrying" in out and "sat idle for" in out
    report = execute_book.execute([busy], jobs=1, page_timeout=5, idle_timeout=600, retries=0,
                                  cache_path=tmp_path / "cache")
    assert report[str(busy)]["error"] == "PageTimeout" and report[str(busy)]["seconds"] < 60
    assert "ran past 5 s" in capsys.readouterr().out
