"""Training, export and evaluation of the learned wheel segmenter (needs torch; the service does not).

Modules:
    dataset:  Car-Parts-Segmentation (COCO polygons) → image, wheel mask, wheel instances; the
              fixed seeded validation split; albumentations augmentation; a torch ``Dataset``.
    model:    EfficientNet-Lite0 encoder + FPN-lite decoder → wheel probability map; ONNX export.
    train:    :func:`train` and its CLI (``python -m designsearch.training.segmenter.train``).
    evaluate: :func:`evaluate` (pixel IoU, instance precision/recall, CPU latency) for a list of
              detectors, and its CLI (``python -m designsearch.training.segmenter.evaluate``).

The pure-NumPy parts (dataset loading, split, metrics) are importable without torch; ``model``
and ``train`` import torch.
"""
