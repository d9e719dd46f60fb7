"""Evaluation metrics: detection (AP, mAP) and segmentation (confusion matrix, IoU)."""
