"""The registry of stored results: ``{name: "module.path:function"}``.

Each function lives in the model owner's module and returns a ``lecture_lib.weights.Recipe``
(build, train, evaluate, metric, check_images). Names are strings so that importing
``lecture_lib.weights`` does not import every model. Register a recipe with one line here, then
run ``make weights NAME=<name>`` and commit the line together with ``<name>.pt``, ``<name>.json``
and ``manifest.json`` (tests/test_weights.py fails for a recipe without stored files).
"""

RECIPES: dict[str, str] = {
    "ensembles_shapes": "lecture_lib.ensembles:ensembles_recipe",
    "segmenters_scenes": "lecture_lib.train.segmenter_scenes:scene_segmenters_recipe",
    "faster_rcnn_scenes": "lecture_lib.models.faster_rcnn:faster_rcnn_recipe",
    "mask_rcnn_scenes": "lecture_lib.models.mask_rcnn:mask_rcnn_recipe",
    "rcnn_shapes": "lecture_lib.models.rcnn:rcnn_recipe",
}
