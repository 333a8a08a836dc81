"""Synthetic pictures of the kinds designers send: wheel close-ups, renderings, line drawings, negatives.

Car-Parts-Segmentation and Stanford Cars show wheels small, inside whole cars; a designer's draft
is most often ONE wheel filling the frame (a rendering, a studio shot, a photo of a wheel on a
table, a line drawing). This module makes such pictures, with exact wheel masks, from the same
public data (NumPy/OpenCV only, seeded):

* :class:`WheelCutout` — one annotated (or confidently segmented) wheel: an RGB patch and its
  soft alpha mask (wheel + tyre).
* :func:`render_closeup` — a cut-out scaled to fill 40-100 % of the frame, rotated 0-360° about its
  centre, seen at an angle (random anisotropic squash and a mild projective warp: a wheel seen
  obliquely is an ellipse), optionally without its tyre (the rim only: the wheel mask cut by its
  fitted ellipse shrunk to 60-76 %), recoloured (finish), pasted with a feathered edge on a plain
  white / grey / black, gradient, noise or photographic background. The label is the warped alpha,
  so image and mask agree by construction. Partly cut-off wheels are made too.
* :func:`line_drawing` — line-drawing versions: the product's Canny edge map
  (:func:`designsearch.images.edge_map`) with thinner or thicker strokes, a pencil-sketch filter
  (colour dodge of the grey image by its blurred negative), adaptive-threshold ink, and hand-drawn
  jitter (a smooth random displacement field, as in elastic distortion, Simard et al., ICDAR 2003).
* :func:`render_negative` — pictures with no wheel: flat colours, gradients, noise, textures, car
  photos with the wheels removed (OpenCV inpainting, Telea 2004), logos (text and polygons).
* :func:`build_validation_sets` — the fixed validation sets of the segmenter: (b) close-ups,
  renderings on white and line drawings made ONLY from wheels of validation-split photos, and
  (c) negatives, every background taken from validation-split photos too, so no source photo is in
  both training and validation.

Background photos for training come from training-split photos only (regions free of wheels).
"""

from designsearch.training.segmenter.synthetic.backgrounds import PhotoBackgrounds, background, remove_wheels
from designsearch.training.segmenter.synthetic.closeups import render_closeup, rim_only
from designsearch.training.segmenter.synthetic.constants import BACKGROUNDS, NEGATIVE_KINDS, SYNTHETIC_NEGATIVE_KINDS, VAL_STYLES
from designsearch.training.segmenter.synthetic.cutouts import WheelCutout, cutout_from_mask, cutouts_from_sample, wheel_face_shape
from designsearch.training.segmenter.synthetic.drawings import line_drawing, render_negative
from designsearch.training.segmenter.synthetic.mixture import DesignerMixDataset, stanford_cutouts
from designsearch.training.segmenter.synthetic.valsets import (ValItem, build_validation_sets, closeup_set, mask_box, negative_set,
                                                  write_validation_sets)

__all__ = ["BACKGROUNDS", "NEGATIVE_KINDS", "SYNTHETIC_NEGATIVE_KINDS", "VAL_STYLES", "DesignerMixDataset",
           "PhotoBackgrounds", "ValItem", "WheelCutout", "background", "build_validation_sets", "closeup_set",
           "cutout_from_mask", "cutouts_from_sample", "line_drawing", "mask_box", "negative_set", "remove_wheels",
           "render_closeup", "render_negative", "rim_only", "stanford_cutouts", "wheel_face_shape",
           "write_validation_sets"]
