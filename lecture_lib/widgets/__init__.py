"""Interactive demos: one file per demo with compute_* (pure), plot_* (matplotlib), *_demo (ipywidgets)."""
