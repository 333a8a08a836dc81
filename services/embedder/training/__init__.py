"""Training and evaluation of the embedding network (needs the ``train`` extra: torch, albumentations).

* :mod:`.data`: Stanford Cars rows, the by-class split, wheel-crop extraction and caching.
* :mod:`.augment`: photo augmentation and the edge-map (sketch) view.
* :mod:`.train`: cross-entropy (normalised softmax) training, ONNX export, model card.
* :mod:`.evaluate`: Recall@K / mAP@R of the untrained ImageNet model vs the trained one.

The serving path (``services.embedder`` core/servicer) never imports this package.
"""
