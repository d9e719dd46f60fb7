"""Shared test set-up: headless matplotlib, fast single-threaded torch, hypothesis profiles."""

import os

import matplotlib

matplotlib.use("Agg")

import torch
from hypothesis import settings

# Two pytest-xdist workers share two cores: one thread each avoids oversubscription.
torch.set_num_threads(1)

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
