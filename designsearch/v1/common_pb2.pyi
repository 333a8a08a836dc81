from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Domain(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DOMAIN_UNSPECIFIED: _ClassVar[Domain]
    DOMAIN_PHOTO: _ClassVar[Domain]
    DOMAIN_SKETCH: _ClassVar[Domain]

class CropKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CROP_KIND_UNSPECIFIED: _ClassVar[CropKind]
    CROP_KIND_WHEEL: _ClassVar[CropKind]
    CROP_KIND_CLOSEUP: _ClassVar[CropKind]
    CROP_KIND_WHOLE_IMAGE: _ClassVar[CropKind]
DOMAIN_UNSPECIFIED: Domain
DOMAIN_PHOTO: Domain
DOMAIN_SKETCH: Domain
CROP_KIND_UNSPECIFIED: CropKind
CROP_KIND_WHEEL: CropKind
CROP_KIND_CLOSEUP: CropKind
CROP_KIND_WHOLE_IMAGE: CropKind

class Image(_message.Message):
    __slots__ = ("content", "source")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    content: bytes
    source: str
    def __init__(self, content: _Optional[bytes] = ..., source: _Optional[str] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    x1: int
    y1: int
    x2: int
    y2: int
    def __init__(self, x1: _Optional[int] = ..., y1: _Optional[int] = ..., x2: _Optional[int] = ..., y2: _Optional[int] = ...) -> None: ...

class Crop(_message.Message):
    __slots__ = ("box", "score", "kind", "image", "mask")
    BOX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    box: BoundingBox
    score: float
    kind: CropKind
    image: bytes
    mask: bytes
    def __init__(self, box: _Optional[_Union[BoundingBox, _Mapping]] = ..., score: _Optional[float] = ..., kind: _Optional[_Union[CropKind, str]] = ..., image: _Optional[bytes] = ..., mask: _Optional[bytes] = ...) -> None: ...

class DesignRecord(_message.Message):
    __slots__ = ("design_id", "brand", "model", "year", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DESIGN_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    design_id: str
    brand: str
    model: str
    year: int
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, design_id: _Optional[str] = ..., brand: _Optional[str] = ..., model: _Optional[str] = ..., year: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("brands", "year_min", "year_max", "kinds", "exclude_design_ids", "design_ids")
    BRANDS_FIELD_NUMBER: _ClassVar[int]
    YEAR_MIN_FIELD_NUMBER: _ClassVar[int]
    YEAR_MAX_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_DESIGN_IDS_FIELD_NUMBER: _ClassVar[int]
    DESIGN_IDS_FIELD_NUMBER: _ClassVar[int]
    brands: _containers.RepeatedScalarFieldContainer[str]
    year_min: int
    year_max: int
    kinds: _containers.RepeatedScalarFieldContainer[CropKind]
    exclude_design_ids: _containers.RepeatedScalarFieldContainer[str]
    design_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, brands: _Optional[_Iterable[str]] = ..., year_min: _Optional[int] = ..., year_max: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[CropKind, str]]] = ..., exclude_design_ids: _Optional[_Iterable[str]] = ..., design_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...
