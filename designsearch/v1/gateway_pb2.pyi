from designsearch.v1 import common_pb2 as _common_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FindSimilarRequest(_message.Message):
    __slots__ = ("image", "k", "filters", "domain", "no_cache")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    k: int
    filters: _common_pb2.Filters
    domain: _common_pb2.Domain
    no_cache: bool
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ..., no_cache: _Optional[bool] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("design", "score", "query_box", "image_id", "catalogue_box", "thumbnail", "source")
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    QUERY_BOX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CATALOGUE_BOX_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    design: _common_pb2.DesignRecord
    score: float
    query_box: _common_pb2.BoundingBox
    image_id: str
    catalogue_box: _common_pb2.BoundingBox
    thumbnail: bytes
    source: str
    def __init__(self, design: _Optional[_Union[_common_pb2.DesignRecord, _Mapping]] = ..., score: _Optional[float] = ..., query_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., image_id: _Optional[str] = ..., catalogue_box: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., thumbnail: _Optional[bytes] = ..., source: _Optional[str] = ...) -> None: ...

class FindSimilarResponse(_message.Message):
    __slots__ = ("matches", "query_crops", "domain", "cache_hit", "embedder_version", "timings_ms", "query_id")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    QUERY_CROPS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    query_crops: _containers.RepeatedCompositeFieldContainer[_common_pb2.Crop]
    domain: _common_pb2.Domain
    cache_hit: bool
    embedder_version: str
    timings_ms: _containers.ScalarMap[str, float]
    query_id: str
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., query_crops: _Optional[_Iterable[_Union[_common_pb2.Crop, _Mapping]]] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ..., cache_hit: _Optional[bool] = ..., embedder_version: _Optional[str] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., query_id: _Optional[str] = ...) -> None: ...

class IndexDesignsRequest(_message.Message):
    __slots__ = ("design", "image", "move")
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MOVE_FIELD_NUMBER: _ClassVar[int]
    design: _common_pb2.DesignRecord
    image: _common_pb2.Image
    move: bool
    def __init__(self, design: _Optional[_Union[_common_pb2.DesignRecord, _Mapping]] = ..., image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., move: _Optional[bool] = ...) -> None: ...

class IndexItemResult(_message.Message):
    __slots__ = ("index", "design_id", "image_id", "status", "crops_indexed", "error", "failure")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[IndexItemResult.Status]
        STATUS_ADDED: _ClassVar[IndexItemResult.Status]
        STATUS_DUPLICATE: _ClassVar[IndexItemResult.Status]
        STATUS_FAILED: _ClassVar[IndexItemResult.Status]
        STATUS_MOVED: _ClassVar[IndexItemResult.Status]
    STATUS_UNSPECIFIED: IndexItemResult.Status
    STATUS_ADDED: IndexItemResult.Status
    STATUS_DUPLICATE: IndexItemResult.Status
    STATUS_FAILED: IndexItemResult.Status
    STATUS_MOVED: IndexItemResult.Status
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DESIGN_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CROPS_INDEXED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    index: int
    design_id: str
    image_id: str
    status: IndexItemResult.Status
    crops_indexed: int
    error: str
    failure: _status_pb2.Status
    def __init__(self, index: _Optional[int] = ..., design_id: _Optional[str] = ..., image_id: _Optional[str] = ..., status: _Optional[_Union[IndexItemResult.Status, str]] = ..., crops_indexed: _Optional[int] = ..., error: _Optional[str] = ..., failure: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class IndexDesignsResponse(_message.Message):
    __slots__ = ("results", "added", "duplicates", "failed", "moved")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IndexItemResult]
    added: int
    duplicates: int
    failed: int
    moved: int
    def __init__(self, results: _Optional[_Iterable[_Union[IndexItemResult, _Mapping]]] = ..., added: _Optional[int] = ..., duplicates: _Optional[int] = ..., failed: _Optional[int] = ..., moved: _Optional[int] = ...) -> None: ...

class DislikeRequest(_message.Message):
    __slots__ = ("query_id", "design_id")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    DESIGN_ID_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    design_id: str
    def __init__(self, query_id: _Optional[str] = ..., design_id: _Optional[str] = ...) -> None: ...

class DislikeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("designs", "images", "points", "embedder_version", "collection")
    DESIGNS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    designs: int
    images: int
    points: int
    embedder_version: str
    collection: str
    def __init__(self, designs: _Optional[int] = ..., images: _Optional[int] = ..., points: _Optional[int] = ..., embedder_version: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("first", "second", "domain")
    FIRST_FIELD_NUMBER: _ClassVar[int]
    SECOND_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    first: _common_pb2.Image
    second: _common_pb2.Image
    domain: _common_pb2.Domain
    def __init__(self, first: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., second: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("similarity", "same_design", "threshold", "domain", "embedder_version", "false_accept_rate", "false_reject_rate", "equal_error_rate")
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    SAME_DESIGN_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FALSE_ACCEPT_RATE_FIELD_NUMBER: _ClassVar[int]
    FALSE_REJECT_RATE_FIELD_NUMBER: _ClassVar[int]
    EQUAL_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    similarity: float
    same_design: bool
    threshold: float
    domain: _common_pb2.Domain
    embedder_version: str
    false_accept_rate: float
    false_reject_rate: float
    equal_error_rate: float
    def __init__(self, similarity: _Optional[float] = ..., same_design: _Optional[bool] = ..., threshold: _Optional[float] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ..., embedder_version: _Optional[str] = ..., false_accept_rate: _Optional[float] = ..., false_reject_rate: _Optional[float] = ..., equal_error_rate: _Optional[float] = ...) -> None: ...

class IdentifyRequest(_message.Message):
    __slots__ = ("image", "filters", "domain", "neighbours")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOURS_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    filters: _common_pb2.Filters
    domain: _common_pb2.Domain
    neighbours: int
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ..., neighbours: _Optional[int] = ...) -> None: ...

class Candidate(_message.Message):
    __slots__ = ("brand", "model", "year", "vote_share", "best_score", "design_ids")
    BRAND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    VOTE_SHARE_FIELD_NUMBER: _ClassVar[int]
    BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    DESIGN_IDS_FIELD_NUMBER: _ClassVar[int]
    brand: str
    model: str
    year: int
    vote_share: float
    best_score: float
    design_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, brand: _Optional[str] = ..., model: _Optional[str] = ..., year: _Optional[int] = ..., vote_share: _Optional[float] = ..., best_score: _Optional[float] = ..., design_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class IdentifyResponse(_message.Message):
    __slots__ = ("candidates", "embedder_version", "query_id")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[Candidate]
    embedder_version: str
    query_id: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[Candidate, _Mapping]]] = ..., embedder_version: _Optional[str] = ..., query_id: _Optional[str] = ...) -> None: ...

class GetNoveltyRequest(_message.Message):
    __slots__ = ("image", "k", "filters", "domain")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    k: int
    filters: _common_pb2.Filters
    domain: _common_pb2.Domain
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ...) -> None: ...

class GetNoveltyResponse(_message.Message):
    __slots__ = ("novelty", "nearest", "embedder_version", "query_id")
    NOVELTY_FIELD_NUMBER: _ClassVar[int]
    NEAREST_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    novelty: float
    nearest: _containers.RepeatedCompositeFieldContainer[Match]
    embedder_version: str
    query_id: str
    def __init__(self, novelty: _Optional[float] = ..., nearest: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., embedder_version: _Optional[str] = ..., query_id: _Optional[str] = ...) -> None: ...

class GetTypicalityRequest(_message.Message):
    __slots__ = ("image", "group", "domain")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    image: _common_pb2.Image
    group: _common_pb2.Filters
    domain: _common_pb2.Domain
    def __init__(self, image: _Optional[_Union[_common_pb2.Image, _Mapping]] = ..., group: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ..., domain: _Optional[_Union[_common_pb2.Domain, str]] = ...) -> None: ...

class GetTypicalityResponse(_message.Message):
    __slots__ = ("typicality", "group_size", "group_mean", "group_std", "z_score", "compared", "embedder_version", "query_id")
    TYPICALITY_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROUP_MEAN_FIELD_NUMBER: _ClassVar[int]
    GROUP_STD_FIELD_NUMBER: _ClassVar[int]
    Z_SCORE_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    typicality: float
    group_size: int
    group_mean: float
    group_std: float
    z_score: float
    compared: str
    embedder_version: str
    query_id: str
    def __init__(self, typicality: _Optional[float] = ..., group_size: _Optional[int] = ..., group_mean: _Optional[float] = ..., group_std: _Optional[float] = ..., z_score: _Optional[float] = ..., compared: _Optional[str] = ..., embedder_version: _Optional[str] = ..., query_id: _Optional[str] = ...) -> None: ...

class DesignSummary(_message.Message):
    __slots__ = ("design", "images")
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    design: _common_pb2.DesignRecord
    images: int
    def __init__(self, design: _Optional[_Union[_common_pb2.DesignRecord, _Mapping]] = ..., images: _Optional[int] = ...) -> None: ...

class ListDesignsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filters")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filters: _common_pb2.Filters
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filters: _Optional[_Union[_common_pb2.Filters, _Mapping]] = ...) -> None: ...

class ListDesignsResponse(_message.Message):
    __slots__ = ("designs", "next_page_token")
    DESIGNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    designs: _containers.RepeatedCompositeFieldContainer[DesignSummary]
    next_page_token: str
    def __init__(self, designs: _Optional[_Iterable[_Union[DesignSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDesignRequest(_message.Message):
    __slots__ = ("design_id",)
    DESIGN_ID_FIELD_NUMBER: _ClassVar[int]
    design_id: str
    def __init__(self, design_id: _Optional[str] = ...) -> None: ...

class GetDesignResponse(_message.Message):
    __slots__ = ("design",)
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    design: DesignSummary
    def __init__(self, design: _Optional[_Union[DesignSummary, _Mapping]] = ...) -> None: ...

class UpdateDesignRequest(_message.Message):
    __slots__ = ("design", "update_mask")
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    design: _common_pb2.DesignRecord
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, design: _Optional[_Union[_common_pb2.DesignRecord, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateDesignResponse(_message.Message):
    __slots__ = ("design", "points_updated")
    DESIGN_FIELD_NUMBER: _ClassVar[int]
    POINTS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    design: DesignSummary
    points_updated: int
    def __init__(self, design: _Optional[_Union[DesignSummary, _Mapping]] = ..., points_updated: _Optional[int] = ...) -> None: ...

class DeleteDesignRequest(_message.Message):
    __slots__ = ("design_id",)
    DESIGN_ID_FIELD_NUMBER: _ClassVar[int]
    design_id: str
    def __init__(self, design_id: _Optional[str] = ...) -> None: ...

class DeleteDesignResponse(_message.Message):
    __slots__ = ("images_deleted", "points_deleted")
    IMAGES_DELETED_FIELD_NUMBER: _ClassVar[int]
    POINTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    images_deleted: int
    points_deleted: int
    def __init__(self, images_deleted: _Optional[int] = ..., points_deleted: _Optional[int] = ...) -> None: ...
