"""Evaluation metrics: detection (AP, mAP), masks (mask IoU, mask mAP) and segmentation (confusion matrix, IoU)."""
