"""Training and evaluation of the embedding network (needs the ``train`` extra: torch, albumentations).

* :mod:`.data`: Stanford Cars rows, the by-class split, wheel-crop extraction and caching.
* :mod:`.augment`: photo augmentation and the edge-map (sketch) view.
* :mod:`.train`: cross-entropy (normalised softmax) training, ONNX export, model card.
* :mod:`.contrastive`: supervised-contrastive / NT-Xent loss and normalised-softmax CE (issue 9).
* :mod:`.train_contrastive`: full-network training with instance, same-photo and car-model
  signals, each switchable (``train-embedder --objective contrastive``).
* :mod:`.evaluate`: Recall@K / mAP@R, same-photo partner and rotation rows, of the untrained
  ImageNet model vs trained ones.

The serving path (``designsearch.services.embedder`` core/servicer) never imports this package.
"""
