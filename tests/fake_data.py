"""Small local fakes of real data sets, in their on-disk formats (nothing is downloaded)."""

import pickle

import numpy as np

from lecture_lib.data.classification import CIFAR10_CLASSES


def write_fake_cifar(root, per_batch=6, n_test=5, learnable=False):
    """cifar-10-batches-py as torchvision reads it: pickled dicts with 'data' [N, 3072] uint8 and 'labels'.

    ``learnable``: each image is its class's own random pattern plus noise, so that a classifier
    can learn the labels (random pixels otherwise). Returns ``{file name: (data, labels)}``.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)  # channel planes R, G, B of 32x32
        labels = rng.integers(0, 10, size=n).tolist()
        if learnable:
            patterns = np.random.default_rng(1).integers(60, 196, size=(10, 3072))
            noise = rng.normal(0, 40, size=(n, 3072))
            data = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": data, "labels": labels, "filenames": []}, f)
        arrays[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch}, f)
    return arrays
