"""lecture_lib: the tested helper library of the course
*Training practice, semantic segmentation and object detection*.

One concept per module (see DESIGN.md): ``boxes`` holds boxes, ``nms`` holds NMS, and so on.
Chapter notebooks import from here; the implementations here are the canonical ones.
"""

__version__ = "0.1.0"
