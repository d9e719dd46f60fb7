"""Offline data sets: synthetic shapes on scikit-image textures, scikit-learn digits, and real loaders."""
