// Accessible names for ipywidgets controls (loaded on every page of the book by _ext/course_html.py).
// ipywidgets 8 draws a slider as a noUiSlider: its handle is focusable and moves with the arrow
// keys, but carries no name (the widget's description is a separate <label>), so a screen reader
// announced "slider, 35" without saying which. Name each handle, and the editable readout next
// to it, after the widget's label. The widget manager renders after load: watch the page.
// The primary sidebar (logo, search button, chapter list) is a plain <div> outside every
// landmark, so a screen reader's landmark list skipped the home link (axe: region): make the
// sidebar a navigation landmark of its own (the chapter list inside stays the "Main" one).
(function () {
  "use strict";
  function landmarks() {
    var sidebar = document.getElementById("pst-primary-sidebar");
    if (sidebar && !sidebar.hasAttribute("role")) {
      sidebar.setAttribute("role", "navigation");
      sidebar.setAttribute("aria-label", "Site");
    }
  }
  function labelOf(widget) {
    var label = widget.querySelector(":scope > label.widget-label");
    var text = label ? label.textContent.trim() : "";
    return text || widget.getAttribute("title") || "";
  }
  function name(root) {
    root.querySelectorAll(".widget-slider, .widget-hslider, .widget-vslider").forEach(function (widget) {
      var text = labelOf(widget);
      if (!text) return;
      widget.querySelectorAll('[role="slider"]:not([aria-label])').forEach(function (handle) {
        handle.setAttribute("aria-label", text);
      });
      widget.querySelectorAll(".widget-readout:not([aria-label])").forEach(function (readout) {
        readout.setAttribute("role", "textbox");
        readout.setAttribute("aria-label", text + " (value)");
      });
    });
  }
  function start() {
    landmarks();
    name(document);
    new MutationObserver(function (records) {
      for (var i = 0; i < records.length; i++) {
        if (records[i].addedNodes.length) { name(document); return; }
      }
    }).observe(document.body, { childList: true, subtree: true });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
