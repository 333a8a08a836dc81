from designsearch.v1 import common_pb2 as _common_pb2
from designsearch.internal.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentRequest(_message.Message):
    __slots__ = ("image", "max_crops", "crop_pixels", "crop_size")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_CROPS_FIELD_NUMBER: _ClassVar[int]
    CROP_PIXELS_FIELD_NUMBER: _ClassVar[int]
    CROP_SIZE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    max_crops: int
    crop_pixels: bool
    crop_size: int
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., max_crops: _Optional[int] = ..., crop_pixels: _Optional[bool] = ..., crop_size: _Optional[int] = ...) -> None: ...

class SegmentResponse(_message.Message):
    __slots__ = ("crops", "image_width", "image_height", "model_version", "reason", "crop_pixels")
    CROPS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CROP_PIXELS_FIELD_NUMBER: _ClassVar[int]
    crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.Crop]
    image_width: int
    image_height: int
    model_version: str
    reason: str
    crop_pixels: _containers.RepeatedCompositeFieldContainer[_types_pb2.Pixels]
    def __init__(self, crops: _Optional[_Iterable[_Union[_common_pb2.Crop, _Mapping]]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., model_version: _Optional[str] = ..., reason: _Optional[str] = ..., crop_pixels: _Optional[_Iterable[_Union[_types_pb2.Pixels, _Mapping]]] = ...) -> None: ...

class GetSegmenterInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSegmenterInfoResponse(_message.Message):
    __slots__ = ("model_version", "detector")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    detector: str
    def __init__(self, model_version: _Optional[str] = ..., detector: _Optional[str] = ...) -> None: ...
