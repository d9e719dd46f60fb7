"""Small fixes to the rendered HTML of the book (a local Sphinx extension, see _config.yml).

- sphinx-thebe registers its inline configuration script twice under Jupyter Book 1, which makes
  the browser report "Identifier 'THEBE_JS_URL' has already been declared": keep one copy of
  every script.
"""


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


def setup(app):
    # Early: Sphinx emits html-page-context with emit_firstresult, so a handler that returns a
    # template name stops the ones after it.
    app.connect("html-page-context", _dedupe_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
