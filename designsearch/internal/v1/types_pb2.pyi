from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class View(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIEW_UNSPECIFIED: _ClassVar[View]
    VIEW_PHOTO: _ClassVar[View]
    VIEW_LINES: _ClassVar[View]
    VIEW_CUTOUT: _ClassVar[View]
VIEW_UNSPECIFIED: View
VIEW_PHOTO: View
VIEW_LINES: View
VIEW_CUTOUT: View
