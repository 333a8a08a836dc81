"""Everything torch: models, datasets, augmentation, trainers, evaluation, ONNX export (not imported by serving code)."""
