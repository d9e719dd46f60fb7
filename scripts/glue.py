"""Numbers in the prose come from the computation: two checks over executed notebooks.

    python scripts/glue.py check _build/executed          # typed figures that a cell prints
    python scripts/glue.py compare BUILD_A BUILD_B         # glued values that differ

``check`` reads every executed chapter notebook under a folder and lists each figure in a
markdown cell that a code cell of the same page also prints, but that is typed instead of
glued (MyST-NB ``glue`` / ``{glue:text}``): such a figure goes stale as soon as the
computation changes. A figure is a number with a decimal point or of four or more digits,
with at least two significant digits (0.82, 3.5, 66.9, 1231; not 0.5, 0.50 or 1000); it matches a printed
number when the printed one, rounded to the typed number's decimals, equals it (also as a
percentage: 81.9 % matches 0.8192). Figures inside glue roles, inline code, maths, links and
citations are not prose. A page may declare figures it types on purpose -- a citation, a
definition, a constant its code sets -- in its notebook metadata ``lecture.typed`` (``{"53.7":
"the R-CNN paper's mAP"}``, figure -> why); ``check`` skips those, and lists a declared figure
that the prose no longer has. Exit status 1 when it finds any.

``compare`` reads the glued values of two builds (folders of executed notebooks that still hold
their glue outputs: the ``_build/executed`` of two ``make notebooks`` runs, or the notebooks of two
full builds taken from ``_build/.jupyter_cache`` -- not ``_build/jupyter_execute``, from which
MyST-NB has removed them) and lists every name whose value differs, was added or was removed. A value that differs only
in digits the prose does not show (``{glue:text}`name:.2f```) counts as equal; a value the page
declares as a measured time (its notebook metadata ``lecture.varies``, e.g. a speed-up: the page
says it varies and shows its spread) is listed apart. Exit status 1 when any other value differs.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

import nbformat

GLUE_PREFIX = "application/papermill.record/"

# Spans of markdown that are not prose: glue roles and other roles ({cite}`...`), inline code,
# maths ($...$, $$...$$), links' targets, HTML comments, image references.
_NOT_PROSE = re.compile(
    r"\{[a-z:-]+\}`[^`]*`"          # {glue:text}`name:.3f`, {cite}`key`, {numref}`...`
    r"|```.*?```"                    # fenced code
    r"|`[^`]*`"                      # inline code
    r"|\$\$.*?\$\$|\$[^$\n]*\$"      # maths
    r"|\]\([^)]*\)"                  # link targets
    r"|<!--.*?-->"                   # comments
    r"|https?://\S+",
    flags=re.S,
)
# A figure: a decimal with >= 2 significant digits, or an integer of >= 4 digits (thin spaces
# and commas as thousands separators allowed), not part of a word or identifier.
_FIGURE = re.compile(r"(?<![\w.])(\d{1,3}(?:[ ,\u202f\u2009]\d{3})+|\d+\.\d+|\d{4,})(?![\w.]*\w)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# COCO's IoU thresholds written as the metric defines them (0.50, 0.55, ..., 0.95; AP75's 0.75):
# definitions that pages also print in their tables' headers, not measurements.
DEFINITIONS = {f"0.{t}" for t in range(55, 100, 5)}


def _figures(markdown: str) -> list[str]:
    prose = _NOT_PROSE.sub(" ", markdown)
    found = []
    for match in _FIGURE.finditer(prose):
        text = re.sub(r"[ ,\u202f\u2009]", "", match.group(1))
        if len(Decimal(text).normalize().as_tuple().digits) < 2:
            continue  # 0.5, 0.50, 0.01, 1000: thresholds and round numbers, not measurements
        if "." not in text and 1900 <= int(text) <= 2099:
            continue  # a year
        if text in DEFINITIONS:
            continue
        if text not in found:
            found.append(text)
    return found


def _printed_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif output.get("output_type") in {"execute_result", "display_data"}:
            if "scrapbook" in output.get("metadata", {}):
                continue  # a glued value: what the prose may quote through {glue:text}
            data = output.get("data", {})
            for mime in ("text/plain", "text/markdown", "text/html", "text/latex"):
                if mime in data:
                    parts.append(data[mime] if isinstance(data[mime], str) else "".join(data[mime]))
                    break
    return "\n".join(parts)


def _matches(figure: str, printed: list[Decimal]) -> bool:
    typed = Decimal(figure)
    places = -typed.as_tuple().exponent if "." in figure else 0
    quantum = Decimal(1).scaleb(-places)
    for value in printed:
        for scaled in (value, value * 100):
            try:
                if scaled.quantize(quantum) == typed:
                    return True
            except InvalidOperation:  # too many digits for the quantum
                continue
    return False


def declared_typed(nb) -> dict[str, str]:
    """The figures ``nb`` types on purpose (``metadata.lecture.typed``: figure -> why)."""
    declared = nb.metadata.get("lecture", {}).get("typed", {})
    if not isinstance(declared, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                 for k, v in declared.items()):
        raise ValueError(f"metadata.lecture.typed must map each figure to why it is typed "
                         f"(e.g. {{\"53.7\": \"the R-CNN paper's mAP\"}}), got {declared!r}")
    return declared


def check_notebook(nb) -> list[str]:
    """Typed figures of ``nb``'s markdown that its code cells also print (those declared in
    ``metadata.lecture.typed`` excepted), and declared figures the markdown no longer has."""
    declared = declared_typed(nb)
    printed = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for number in _NUMBER.findall(_printed_text(cell)):
                try:
                    printed.append(Decimal(number))
                except InvalidOperation:
                    pass
    problems, typed = [], set()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for figure in _figures(cell.source):
            typed.add(figure)
            if figure not in declared and _matches(figure, printed):
                problems.append(f"markdown cell {index}: {figure} is printed by a code cell but typed, not glued")
    problems += [f"metadata.lecture.typed declares {figure} ({why}), which no markdown cell has"
                 for figure, why in declared.items() if figure not in typed]
    return problems


def glued_values(nb) -> dict[str, str]:
    """``{name: text/plain value}`` of every ``glue`` call in an executed notebook."""
    values = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            data = output.get("data", {})
            prefix = meta.get("mime_prefix", "")
            text = data.get(prefix + "text/plain")
            if text is None:  # a figure or HTML: compare whatever was stored
                text = json.dumps({k: v for k, v in data.items() if not k.startswith(prefix + "image/")},
                                  sort_keys=True) or "<image>"
            values[meta["name"]] = text if isinstance(text, str) else "".join(text)
    return values


def _notebooks(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of executed notebooks")
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*.ipynb"))
            if ".ipynb_checkpoints" not in p.parts}


def check(folder: Path) -> list[str]:
    problems = []
    for name, path in _notebooks(folder).items():
        if not name.startswith("book/") and "/book/" not in f"/{name}":
            continue  # chapters only: exercises are questions, not measured prose
        problems += [f"{name}: {p}" for p in check_notebook(nbformat.read(path, as_version=4))]
    return problems


_GLUE_ROLE = re.compile(r"\{glue:text\}`([A-Za-z_][\w.]*)(?::([^`]*))?`")


def shown_formats(nb) -> dict[str, set[str]]:
    """``{name: format specs}`` of every ``{glue:text}`name:spec``` in ``nb``'s markdown (the
    precisions a reader sees; ``""`` when the role gives none)."""
    formats: dict[str, set[str]] = {}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for name, spec in _GLUE_ROLE.findall(cell.source):
                formats.setdefault(name, set()).add(spec)
    return formats


def _as_shown(value: str, spec: str) -> str:
    try:
        return format(float(value), spec) if spec else value
    except ValueError:  # not a number (a string's repr, a table): compared as stored
        return value


def varying(nb) -> set[str]:
    """Glued names that the page declares as measured times (``metadata.lecture.varies``): they
    change from run to run by nature, and the page shows their spread instead of one number."""
    return set(nb.metadata.get("lecture", {}).get("varies", []))


def compare_report(first: Path, second: Path) -> dict[str, list[str]]:
    """Glued values of two builds, page by page and name by name, sorted into
    ``identical``, ``equal_as_shown`` (they differ only in digits that no page shows: the prose
    formats them, e.g. ``{glue:text}`mem:.2f``` with 2.74992 and 2.749912), ``varies`` (declared
    measured times) and ``differences`` (everything else: a number the reader would see change)."""
    a, b = _notebooks(first), _notebooks(second)
    report = {"identical": [], "equal_as_shown": [], "varies": [], "differences": []}
    report["differences"] += [f"{name}: only in {first}" for name in sorted(set(a) - set(b))]
    report["differences"] += [f"{name}: only in {second}" for name in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        nb_a, nb_b = nbformat.read(a[name], as_version=4), nbformat.read(b[name], as_version=4)
        va, vb = glued_values(nb_a), glued_values(nb_b)
        formats, declared = shown_formats(nb_a), varying(nb_a) | varying(nb_b)
        for key in sorted(set(va) | set(vb)):
            x, y = va.get(key, "<missing>"), vb.get(key, "<missing>")
            line = f"{name}: {key}: {x!s:.60} != {y!s:.60}"
            if x == y:
                report["identical"].append(f"{name}: {key}")
            elif key in va and key in vb and key in formats and all(
                    _as_shown(x, spec) == _as_shown(y, spec) for spec in formats[key]):  # equal wherever shown
                report["equal_as_shown"].append(line)
            elif key in declared and key in va and key in vb:
                report["varies"].append(line)
            else:
                report["differences"].append(line)
    return report


def compare(first: Path, second: Path) -> list[str]:
    """The glued values whose difference a reader would see (see :func:`compare_report`)."""
    return compare_report(first, second)["differences"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="typed figures that a code cell of the same page prints")
    c.add_argument("folder", type=Path)
    d = sub.add_parser("compare", help="glued values that differ between two builds")
    d.add_argument("first", type=Path)
    d.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            problems = check(args.folder)
            print("\n".join(problems) or f"{args.folder}: every printed figure in the prose is glued")
        else:
            report = compare_report(args.first, args.second)
            problems = report["differences"]
            if report["varies"]:
                print("measured times, declared by their pages (they vary between runs; the pages show the spread):")
                print("\n".join(f"  {line}" for line in report["varies"]))
            if report["equal_as_shown"]:
                print("equal as the prose shows them (they differ in digits no page shows):")
                print("\n".join(f"  {line}" for line in report["equal_as_shown"]))
            if problems:
                print("DIFFERENT:")
                print("\n".join(f"  {line}" for line in problems))
            total = sum(len(v) for v in report.values())
            print(f"{total} glued values: {len(report['identical'])} identical, {len(report['equal_as_shown'])} equal "
                  f"as shown, {len(report['varies'])} declared measured times, {len(problems)} different")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
