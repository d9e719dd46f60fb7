"""Models of the lecture: FCN, UNet, localization heads, Overfeat, R-CNN family."""
