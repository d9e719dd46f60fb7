"""Small fixes to the rendered HTML of the book (a local Sphinx extension, see _config.yml).

- sphinx-thebe registers its inline configuration script twice under Jupyter Book 1, which makes
  the browser report "Identifier 'THEBE_JS_URL' has already been declared": keep one copy of
  every script.
- The text cites author-year ("[Long et al., 2015]", ``bibtex_reference_style: author_year``) but
  sphinxcontrib-bibtex labels the bibliography alpha-style ("[LSD15]", "[HGDollarG17]"), so a
  reader could not find a citation in the list by its label: the ``course_author_year`` style
  (``bibtex_default_style`` in _config.yml) labels entries the way the text cites them.
- sphinx-book-theme leaves pydata-sphinx-theme's ``default_mode`` empty, so every page logs
  "Got invalid theme mode" on load: the book is light unless the reader switches.
"""

import codecs
from collections import Counter

import latexcodec  # noqa: F401  (registers the "ulatex" codec)
from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle


def _plain(text: str) -> str:
    """LaTeX to text: ``Doll{\\'a}r`` -> ``Dollár``."""
    return codecs.decode(text, "ulatex").replace("{", "").replace("}", "")


def author_year_label(entry) -> str:
    """``Long et al., 2015`` / ``Bergstra and Bengio, 2012`` / ``Lin, 2014``, as cited in the text."""
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_plain(" ".join(person.prelast_names + person.last_names)) for person in people]
    if len(names) > 2:
        who = f"{names[0]} et al."
    elif names:
        who = " and ".join(names)
    else:
        who = _plain(entry.fields.get("title", entry.key))
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabelStyle(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year_label(entry) for entry in entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:  # two papers of the same authors and year: 2015a, 2015b
            if counts[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style (sorted by author, year, title) with author-year labels."""

    default_label_style = "course_author_year"


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    # Compare by file name (None and "" both mean an inline script) and attributes (the body
    # of an inline script is one); keep the first, in order. Mutate in place: later handlers
    # append to this same list.
    seen = set()
    unique = []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", str(script)) or "", tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _default_light_mode(app, pagename, templatename, context, doctree):
    # sphinx-book-theme accepts no ``default_mode`` theme option; the template reads the context
    if not context.get("default_mode"):
        context["default_mode"] = "light"


def setup(app):
    register_plugin("pybtex.style.labels", "course_author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "course_author_year", AuthorYearStyle)
    # Early: Sphinx emits html-page-context with emit_firstresult, so a handler that returns a
    # template name stops the ones after it.
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    app.connect("html-page-context", _default_light_mode, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
