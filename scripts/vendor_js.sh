#!/usr/bin/env bash
# Refresh the JavaScript the static book serves itself (never from a CDN): MathJax for the
# maths, require.js + the Jupyter widgets HTML manager for widget outputs.
# The results are committed in _vendor/_static/vendor, which the build copies as is into the book
# (html_extra_path; not in _static/ itself: Jupyter Book adds every .js file found there to every page). Run this only to
# change versions.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null &&
  npm install --no-audit --no-fund --ignore-scripts \
    @jupyter-widgets/html-manager@1.0.15 requirejs@2.3.8 mathjax@3.2.2 >/dev/null)
out=_vendor/_static/vendor
rm -rf "$out" && mkdir -p "$out/mathjax/output/chtml/fonts" "$out/mathjax/input/tex"
nm="$tmp/node_modules"
cp "$nm/requirejs/require.js" "$out/require.js"
cp "$nm/@jupyter-widgets/html-manager/dist/embed-amd.js" "$out/"
cp "$nm"/@jupyter-widgets/html-manager/dist/*.woff* "$out/"
cp "$nm/mathjax/es5/tex-chtml.js" "$out/mathjax/"
cp -r "$nm/mathjax/es5/output/chtml/fonts/woff-v2" "$out/mathjax/output/chtml/fonts/"
cp -r "$nm/mathjax/es5/a11y" "$nm/mathjax/es5/ui" "$out/mathjax/"
cp -r "$nm/mathjax/es5/input/tex/extensions" "$out/mathjax/input/tex/"
cp "$nm/mathjax/LICENSE" "$out/LICENSE.mathjax"
cp "$nm/@jupyter-widgets/html-manager/dist/embed.js.LICENSE.txt" "$out/LICENSE.html-manager-bundled.txt"
cat > "$out/README.md" <<TXT
Vendored by scripts/vendor_js.sh: @jupyter-widgets/html-manager 1.0.15 (BSD-3-Clause),
requirejs 2.3.8 (MIT, licence header inside require.js) (MIT), mathjax 3.2.2 (Apache-2.0). Served from the book's _static folder so that
the rendered book works offline.
TXT
du -sh "$out"
