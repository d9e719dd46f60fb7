// The vendored widget manager (vendor/embed-amd.js) loads its icon fonts from the folder that
// requirejs says its modules came from. A plain <script> tag loads it, so requirejs guesses the
// page's own folder, and a page in book/05_segmentation/ asked for
// book/05_segmentation/<hash>.woff2 (not found). Runs between require.js and embed-amd.js
// (_config.yml, nb_ipywidgets_js) and tells requirejs where those modules really live.
(function () {
  if (typeof window.require !== "function" || typeof window.require.config !== "function") {
    return;  // a page without widgets
  }
  var script = document.querySelector('script[src*="vendor/require.js"]');
  if (!script) {
    return;
  }
  var folder = script.src.slice(0, script.src.lastIndexOf("/") + 1);
  var paths = {};
  [
    "@jupyter-widgets/base",
    "@jupyter-widgets/base7",
    "@jupyter-widgets/controls",
    "@jupyter-widgets/controls7",
    "@jupyter-widgets/html-manager",
    "@jupyter-widgets/html-manager/dist/libembed-amd",
  ].forEach(function (name) {
    paths[name] = folder + "embed-amd";
  });
  window.require.config({ paths: paths });
})();
