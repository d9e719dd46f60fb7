"""scripts/glue.py: typed figures that a cell prints are found; glued ones, code, maths and
round numbers are not; two builds' glued values are compared name by name."""

import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("glue_script", ROOT / "scripts" / "glue.py")
glue_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(glue_script)


def _printing(text):
    return new_code_cell("print(...)", outputs=[new_output("stream", name="stdout", text=text)])


def _glued(name, value):
    return new_code_cell(f"glue({name!r}, ...)", outputs=[new_output(
        "display_data", data={glue_script.GLUE_PREFIX + "text/plain": repr(value)},
        metadata={"scrapbook": {"name": name, "mime_prefix": glue_script.GLUE_PREFIX}})])


@pytest.mark.parametrize("markdown, printed, flagged", [
    ("Validation accuracy reaches 0.819.", "val_acc 0.81934", ["0.819"]),      # rounded
    ("It reaches 81.9 % on the test set.", "acc=0.8192", ["81.9"]),             # as a percentage
    ("The build took 1 231 s.", "total 1231.4 s", ["1231"]),                    # thousands separator
    ("Accuracy {glue:text}`acc:.3f` after training.", "0.819", []),             # glued
    ("The loop `x = 0.819` prints it.", "0.819", []),                           # inline code
    ("Maths $\\mu = 0.819$ only.", "0.819", []),                                # maths
    ("A threshold of 0.50 and 1000 images.", "0.50 1000", []),                  # round numbers
    ("Published in 2015, cited {cite}`girshick2015`.", "2015", []),             # year, citation
    ("It reaches 0.924.", "0.819", []),                                          # not printed here
    ("COCO averages IoU 0.50:0.95; AP75 uses 0.75.", "0.95 0.75", []),           # COCO's thresholds
    ("Mask AP at 0.75 IoU is 0.753.", "0.75 0.7531", ["0.753"]),                 # ... but not results
])
def test_check_notebook_flags_typed_printed_figures(markdown, printed, flagged):
    nb = new_notebook(cells=[_printing(printed), new_markdown_cell(markdown)])
    problems = glue_script.check_notebook(nb)
    assert [p.split(": ")[1].split(" ")[0] for p in problems] == flagged


def test_a_page_declares_the_figures_it_types_on_purpose():
    # a citation that a printed timing happens to equal: declared, so not flagged
    cells = [_printing("took 53.71 s"), new_markdown_cell("The R-CNN paper reports 53.7 mAP.")]
    nb = new_notebook(cells=cells, metadata={"lecture": {"typed": {"53.7": "the R-CNN paper's mAP"}}})
    assert glue_script.check_notebook(nb) == []
    assert len(glue_script.check_notebook(new_notebook(cells=cells))) == 1   # undeclared: flagged
    # a declaration the prose no longer has is stale
    nb.metadata["lecture"]["typed"]["4.9"] = "Optuna's version"
    assert glue_script.check_notebook(nb) == [
        "metadata.lecture.typed declares 4.9 (Optuna's version), which no markdown cell has"]
    # a declaration without its reason is refused
    nb.metadata["lecture"]["typed"] = {"53.7": ""}
    with pytest.raises(ValueError, match="must map each figure to why it is typed"):
        glue_script.check_notebook(nb)
    nb.metadata["lecture"]["typed"] = ["53.7"]
    with pytest.raises(ValueError, match="got \\['53.7'\\]"):
        glue_script.check_notebook(nb)


def test_a_glued_value_is_not_printed_output():
    nb = new_notebook(cells=[_glued("acc", 0.819), new_markdown_cell("It reaches 0.819.")])
    assert glue_script.check_notebook(nb) == []


def test_check_and_compare_over_folders(tmp_path):
    for build, value in (("a", 0.819), ("b", 0.924)):
        nb = new_notebook(cells=[_glued("acc", value), _glued("n", 300), new_markdown_cell("ok")])
        (tmp_path / build / "book").mkdir(parents=True)
        nbformat.write(nb, tmp_path / build / "book" / "page.ipynb")
    assert glue_script.glued_values(nbformat.read(tmp_path / "a/book/page.ipynb", as_version=4)) == {
        "acc": "0.819", "n": "300"}
    differences = glue_script.compare(tmp_path / "a", tmp_path / "a")
    assert differences == []
    differences = glue_script.compare(tmp_path / "a", tmp_path / "b")
    assert differences == ["book/page.ipynb: acc: 0.819 != 0.924"]
    assert glue_script.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert glue_script.main(["check", str(tmp_path / "a")]) == 0
    assert glue_script.main(["check", str(tmp_path / "missing")]) == 2


def test_compare_counts_digits_no_page_shows_as_equal_and_lists_declared_times_apart(tmp_path):
    for build, mem, speedup, acc in (("a", 2.74992, 56.4, 0.819), ("b", 2.749912, 67.3, 0.819)):
        nb = new_notebook(cells=[_glued("mem", mem), _glued("speedup", speedup), _glued("acc", acc),
                                 new_markdown_cell("It keeps {glue:text}`mem:.2f` MB, {glue:text}`speedup:.0f` times "
                                                   "as fast, accuracy {glue:text}`acc:.3f`.")])
        nb.metadata["lecture"] = {"varies": ["speedup"]}
        (tmp_path / build / "book").mkdir(parents=True)
        nbformat.write(nb, tmp_path / build / "book" / "page.ipynb")
    report = glue_script.compare_report(tmp_path / "a", tmp_path / "b")
    assert report["identical"] == ["book/page.ipynb: acc"]
    assert report["equal_as_shown"] == ["book/page.ipynb: mem: 2.74992 != 2.749912"]
    assert report["varies"] == ["book/page.ipynb: speedup: 56.4 != 67.3"]
    assert report["differences"] == []
    assert glue_script.main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    # undeclared, the speed-up is a difference a reader would see
    nb = nbformat.read(tmp_path / "b/book/page.ipynb", as_version=4)
    nb.metadata["lecture"] = {}
    nbformat.write(nb, tmp_path / "b/book/page.ipynb")
    nb = nbformat.read(tmp_path / "a/book/page.ipynb", as_version=4)
    nb.metadata["lecture"] = {}
    nbformat.write(nb, tmp_path / "a/book/page.ipynb")
    assert glue_script.compare(tmp_path / "a", tmp_path / "b") == ["book/page.ipynb: speedup: 56.4 != 67.3"]


def test_a_value_shown_twice_must_agree_at_the_finer_precision(tmp_path):
    for build, mem in (("a", 2.74992), ("b", 2.749912)):
        nb = new_notebook(cells=[_glued("mem", mem),
                                 new_markdown_cell("{glue:text}`mem:.2f` MB, exactly {glue:text}`mem:.6f` MB.")])
        (tmp_path / build / "book").mkdir(parents=True)
        nbformat.write(nb, tmp_path / build / "book" / "page.ipynb")
    assert glue_script.compare(tmp_path / "a", tmp_path / "b") == ["book/page.ipynb: mem: 2.74992 != 2.749912"]
