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

Accessibility (an axe-core scan of every page, tests/test_accessibility.py):

- The sidebar's expand/collapse buttons (``<summary>`` holding only a chevron icon) had no name a
  screen reader could say: each is named after the chapter it opens.
- docutils marks up the bibliography as ``role="list"`` holding ``role="doc-biblioentry"`` items,
  a deprecated role that is no list item, so screen readers saw an empty list: the entries are
  list items.
- ipywidgets sliders (noUiSlider handles) have no accessible name, and a tqdm bar wider than the
  text column is a scrollable box no keyboard can reach: _static/course_a11y.js names each slider
  handle after the widget's label, _static/course.css lets widget rows wrap.
- The primary sidebar (logo, search button, chapter list) lay outside every landmark, so the home
  link was missing from a screen reader's landmark list: course_a11y.js makes the sidebar a
  navigation landmark ("Site").
- A notebook's plot came out as ``<img alt="../../_images/3f9a….png">``: MyST-NB takes alt text
  only from the cell's metadata (``mystnb: image: alt: ...``). Where a cell has none, the alt
  text comes from the output's own metadata (``{"image/png": {"alt": ...}}``, written while the
  notebook runs, see lecture_lib/widgets/alt_text.py), else from the plain-string titles the
  cell's code gives its axes (``set_title("...")``, ``suptitle("...")``). Images still without
  one are listed by tests/test_accessibility.py.
"""

import ast
import codecs
import html
import re
from collections import Counter
from functools import wraps

from docutils import nodes

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


_SUMMARY = re.compile(r"<summary>(?=<span class=\"toctree-toggle\")")
_LINK_THEN_DETAILS = re.compile(r'<a class="reference internal" href="[^"]*">(.*?)</a>\s*<details([^>]*)>\s*<summary>', re.S)


def _name_toggles(toctree_html: str) -> str:
    """Give every chevron-only ``<summary>`` of the sidebar an accessible name: "Pages of <the
    chapter whose link precedes it>", else a generic one."""
    def named(match):
        title = html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()
        label = html.escape(f"Pages of {title}", quote=True)
        return match.group(0)[: -len("<summary>")] + f'<summary aria-label="{label}">'

    toctree_html = _LINK_THEN_DETAILS.sub(named, toctree_html)
    return _SUMMARY.sub('<summary aria-label="Pages of this section">', toctree_html)


def _accessible_toctree(app, pagename, templatename, context, doctree):
    # after pydata-sphinx-theme's add_toctree_functions (priority 500) put the function in context
    generate = context.get("generate_toctree_html")
    if generate is None or getattr(generate, "_course_named", False):
        return

    @wraps(generate)
    def generate_named(*args, **kwargs):
        out = generate(*args, **kwargs)
        if isinstance(out, str):
            return _name_toggles(out)
        for summary in out.select("summary"):  # a BeautifulSoup tree
            if summary.get_text(strip=True) or summary.get("aria-label"):
                continue
            link = summary.find_parent("li").find("a", recursive=False) if summary.find_parent("li") else None
            summary["aria-label"] = f"Pages of {link.get_text(strip=True)}" if link else "Pages of this section"
        return out

    generate_named._course_named = True
    context["generate_toctree_html"] = generate_named


def _bibliography_list_items(app, pagename, templatename, context, doctree):
    body = context.get("body")
    if body and 'role="doc-biblioentry"' in body:
        context["body"] = body.replace('role="doc-biblioentry"', 'role="listitem"')


_TITLE_CALLS = {"set_title", "suptitle", "title"}


def titles_in_code(source: str) -> list[str]:
    """The plain-string titles a cell's code gives its figure, suptitle first, in code order.

    f-strings with placeholders are left out: their text depends on values only the run knows.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics, say
        return []
    found = []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        name = getattr(call.func, "attr", getattr(call.func, "id", None))
        args = list(call.args[:1]) if name in _TITLE_CALLS else []
        args += [kw.value for kw in call.keywords if kw.arg == "title"]
        for arg in args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                text = arg.value
            elif isinstance(arg, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in arg.values):
                text = "".join(v.value for v in arg.values)
            else:
                continue
            text = " ".join(text.split())
            if text:
                found.append((name != "suptitle", call.lineno, call.col_offset, text))
    ordered = [text for *_, text in sorted(found)]
    return list(dict.fromkeys(ordered))


def _alt_from_output_metadata():
    """Let MyST-NB use an ``alt`` stored in an image output's metadata (cell metadata wins)."""
    from myst_nb.core.render import NbElementRenderer

    original = NbElementRenderer.render_image
    if getattr(original, "_course_alt", False):
        return

    @wraps(original)
    def render_image(self, data):
        rendered = original(self, data)
        alt = (data.output_metadata.get(data.mime_type) or {}).get("alt")
        for node in rendered:
            if alt and isinstance(node, nodes.image) and not node.get("alt"):
                node["alt"] = str(alt)
        return rendered

    render_image._course_alt = True
    NbElementRenderer.render_image = render_image


def _alt_from_titles(app, doctree):
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        images = [image for image in cell.findall(nodes.image) if not image.get("alt")]
        if not images:
            continue
        source = "".join(child.astext() for child in cell.children if child.get("nb_element") == "cell_code_source")
        titles = titles_in_code(source)
        if titles:
            for image in images:
                image["alt"] = "Figure: " + "; ".join(titles)


def setup(app):
    register_plugin("pybtex.style.labels", "course_author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "course_author_year", AuthorYearStyle)
    # Early: Sphinx emits html-page-context with emit_firstresult, so a handler that returns a
    # template name stops the ones after it.
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    app.connect("html-page-context", _default_light_mode, priority=100)
    app.connect("html-page-context", _accessible_toctree, priority=900)
    app.connect("html-page-context", _bibliography_list_items, priority=100)
    app.add_js_file("course_a11y.js", defer="defer")
    _alt_from_output_metadata()
    app.connect("doctree-read", _alt_from_titles)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
