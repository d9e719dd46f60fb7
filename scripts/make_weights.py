"""Train the book's long runs once and store them in lecture_lib/weights/ (``make weights``).

    .venv/bin/python scripts/make_weights.py                  # every recipe in RECIPES
    .venv/bin/python scripts/make_weights.py ensembles_shapes # one (or several) by name
    .venv/bin/python scripts/make_weights.py --list           # names, sizes and recorded metrics
    make weights NAME=ensembles_shapes                        # the same, niced

For each name: seed, build the model, train it on the CPU with the recipe (the code path of a
page's ``TRAIN_FROM_SCRATCH``), evaluate it on the full test set and on the check slice, write
``<name>.pt`` (state dict) and ``<name>.json`` (recipe, seed, wall time, machine, versions,
metrics, history) and update ``manifest.json``; then load the file back into a freshly built
model and re-evaluate the check slice, as the stale test (tests/test_weights.py) will.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from lecture_lib import weights


def make(name: str, directory=None) -> dict:
    """Train, evaluate and store one recipe; returns the JSON metadata written."""
    started = time.perf_counter()
    model, meta = weights.train(name)  # seeded, on the CPU (recipe.build() puts it there)
    metrics = weights.evaluate(name, model)
    meta["metrics"] = metrics
    meta["total_wall_seconds"] = time.perf_counter() - started
    entry = weights.save(name, model, meta, directory)
    # read back the way a page and the stale test do
    recipe = weights.get_recipe(name)
    fresh = recipe.build()
    weights.load(name, fresh, directory)
    again = weights.evaluate(name, fresh, check_only=True)["check"][recipe.metric]
    recorded = metrics["check"][recipe.metric]
    if abs(again - recorded) > 0.01:
        raise weights.WeightsError(f"{name}: the stored file re-evaluates to {again:.4f} on the check slice, "
                                   f"{recorded:.4f} was measured before saving (is evaluate() deterministic?)")
    print(f"{name}: {recipe.metric} {metrics['test'][recipe.metric]:.4f} on the test set, "
          f"{recorded:.4f} on the check slice of {recipe.check_images}; trained in {meta['train_wall_seconds']:.0f} s "
          f"wall ({meta['train_cpu_seconds_per_thread']:.0f} CPU s per thread), {entry['bytes'] / 1e6:.2f} MB",
          flush=True)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"recipes to (re)build (default: all of {sorted(weights.RECIPES)})")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--directory", default=None, help="where to write (default: lecture_lib/weights/)")
    parser.add_argument("--list", action="store_true", help="list the stored results and exit")
    args = parser.parse_args(argv)
    if args.list:
        entries = weights.manifest(args.directory)
        for name in sorted(set(weights.RECIPES) | set(entries)):
            entry = entries.get(name)
            print(f"{name:28s} " + (f"{entry['bytes'] / 1e6:6.2f} MB" if entry else "not built"))
        return 0
    unknown = [n for n in args.names if n not in weights.RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; known: {sorted(weights.RECIPES)}")
    torch.set_num_threads(args.threads)
    for name in args.names or sorted(weights.RECIPES):
        make(name, args.directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
