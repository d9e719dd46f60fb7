// Jupyter widgets (the vendored HTML manager) typeset their labels with the MathJax 2 call
// MathJax.Hub.Queue; the book loads MathJax 3. Give MathJax 3 that one call.
// This runs before the deferred MathJax script, so it doubles as MathJax's configuration.
window.MathJax = window.MathJax || {};
window.MathJax.Hub = { Queue: function () {} };  // until MathJax has started
window.MathJax.startup = {
  ready: function () {
    MathJax.startup.defaultReady();
    MathJax.Hub = {
      Queue: function (command) {
        var element = Array.isArray(command) ? command[2] : undefined;
        return MathJax.typesetPromise(element ? [element] : undefined);
      },
    };
  },
};
