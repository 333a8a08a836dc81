"""Kinds and styles of the synthetic pictures (validation sets and training mixture)."""

#: Close-up styles of validation set (b).
VAL_STYLES = ("closeup", "rendering", "line_drawing")
#: Negative kinds of validation set (c).
NEGATIVE_KINDS = ("flat", "gradient", "noise", "texture", "car_no_wheels", "logo")
#: The negative kinds made without a car photo.
SYNTHETIC_NEGATIVE_KINDS = tuple(k for k in NEGATIVE_KINDS if k != "car_no_wheels")
#: Background kinds of a close-up.
BACKGROUNDS = ("white", "grey", "black", "gradient", "photo", "noise")
