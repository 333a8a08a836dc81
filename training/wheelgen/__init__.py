"""The wheel-design engine: parametric rims and the 15 real rim models rendered as studio shots, on-car
composites and line drawings, with exact masks, boxes and design ids (``designsearch render-wheels``).

Training-side only: nothing in the serving code imports it, and its dependencies (trimesh, shapely,
mitsuba, pyrender, DracoPy) are the ``render`` extra, absent from the runtime image.
"""

import os as _os

# pyrender renders offscreen through OSMesa; PyOpenGL reads this once, when OpenGL is first imported
_os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
