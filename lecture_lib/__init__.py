"""lecture_lib: the tested helper library of the course
*Training practice, semantic segmentation and object detection*.

One concept per module (see DESIGN.md): ``boxes`` holds boxes, ``nms`` holds NMS, and so on.
Chapter notebooks import from here; the implementations here are the canonical ones.
"""

__version__ = "0.1.0"

from lecture_lib.widgets.alt_text import record_figure_alt_text as _record_figure_alt_text

# In a kernel, every matplotlib figure's PNG output carries a description of what it shows
# (titles, axis labels, legend); the book uses it as alt text where a cell's metadata gives none
# (issue 15). Outside IPython this does nothing.
_record_figure_alt_text()
