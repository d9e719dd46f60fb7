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
citations are not prose. Exit status 1 when it finds any.

``compare`` reads the glued values of two builds (folders of executed notebooks that still hold
their glue outputs: the ``_build/executed`` of two ``make notebooks`` runs, or the notebooks of two
full builds taken from ``_build/.jupyter_cache`` -- not ``_build/jupyter_execute``, from which
MyST-NB has removed them) and lists every name whose value differs, was added or was removed.
Exit status 1 when there are differences.
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


def check_notebook(nb) -> list[str]:
    """Typed figures of ``nb``'s markdown that its code cells also print."""
    printed = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            for number in _NUMBER.findall(_printed_text(cell)):
                try:
                    printed.append(Decimal(number))
                except InvalidOperation:
                    pass
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for figure in _figures(cell.source):
            if _matches(figure, printed):
                problems.append(f"markdown cell {index}: {figure} is printed by a code cell but typed, not glued")
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


def compare(first: Path, second: Path) -> list[str]:
    a, b = _notebooks(first), _notebooks(second)
    differences = [f"{name}: only in {first}" for name in sorted(set(a) - set(b))]
    differences += [f"{name}: only in {second}" for name in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        va = glued_values(nbformat.read(a[name], as_version=4))
        vb = glued_values(nbformat.read(b[name], as_version=4))
        for key in sorted(set(va) | set(vb)):
            if va.get(key) != vb.get(key):
                differences.append(f"{name}: {key}: {va.get(key, '<missing>')!s:.60} != {vb.get(key, '<missing>')!s:.60}")
    return differences


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
            problems = compare(args.first, args.second)
            total = sum(len(glued_values(nbformat.read(p, as_version=4))) for p in _notebooks(args.first).values())
            print("\n".join(problems) or f"no differences: {total} glued values agree")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
