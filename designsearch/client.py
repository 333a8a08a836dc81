"""The Python client of the public API (``designsearch.v1.GatewayService``).

Example::

    from designsearch.client import DesignSearchClient
    with DesignSearchClient("127.0.0.1:50050") as client:
        response = client.find_similar(open("draft.jpg", "rb").read(), k=6)
        for m in response.matches:
            print(m.design.brand, m.design.model, m.design.year, round(m.score, 3))
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path

import grpc
from grpc_status import rpc_status

from designsearch.catalogue_data import LabelledImage
from designsearch.rpc import BALANCED_RETRY_OPTIONS
from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

DOMAINS = {"auto": common_pb2.DOMAIN_UNSPECIFIED, "photo": common_pb2.DOMAIN_PHOTO, "sketch": common_pb2.DOMAIN_SKETCH}


def index_request(img: LabelledImage, move: bool = False) -> gateway_pb2.IndexDesignsRequest:
    """The ingestion message of one labelled image file (reads the file); ``move``: re-label bytes
    already catalogued under another design (else that item fails with ALREADY_EXISTS)."""
    return gateway_pb2.IndexDesignsRequest(
        design=common_pb2.DesignRecord(design_id=img.design_id, brand=img.brand, model=img.model, year=img.year),
        image=common_pb2.Image(content=img.path.read_bytes(), source=str(img.path.name)), move=move,
    )


async def index_requests(images: Iterable[LabelledImage]) -> AsyncIterator[gateway_pb2.IndexDesignsRequest]:
    """Async stream of ingestion messages (for ``grpc.aio`` stubs)."""
    for img in images:
        yield index_request(img)


def error_reason(err: grpc.RpcError) -> str | None:
    """The ``google.rpc.ErrorInfo`` reason in a failed call's status details, or None."""
    status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    if status is None:
        return None
    from google.rpc import error_details_pb2

    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason
    return None


def error_details(err: grpc.RpcError) -> str:
    """``CODE: message [reason]`` of a failed call, with the ``google.rpc`` reason if present."""
    reason = error_reason(err)
    return f"{err.code().name}: {err.details()}" + (f" [{reason}]" if reason else "")


class DesignSearchClient:
    """Blocking client of the gateway.

    Args:
        address: ``host:port`` of the gateway.
        api_key: sent as ``x-api-key`` when set.
        timeout_s: deadline of FindSimilar calls.
        tls_ca: PEM CA bundle to verify a TLS gateway with; None = the file named by
            ``$DESIGNSEARCH_TLS_CA`` when set (the CLI uses that), else plaintext (loopback, tests).
    """

    def __init__(self, address: str, api_key: str | None = None, timeout_s: float = 30.0,
                 tls_ca: bytes | None = None) -> None:
        if tls_ca is None and os.environ.get("DESIGNSEARCH_TLS_CA"):
            tls_ca = Path(os.environ["DESIGNSEARCH_TLS_CA"]).read_bytes()
        # several gateways behind one target (dns:/// of a headless Service, or ipv4:A,B): round-robin, and a
        # call that fails UNAVAILABLE retried on the next one (designsearch.rpc.SERVICE_CONFIG)
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.max_send_message_length", 64 * 1024 * 1024), *BALANCED_RETRY_OPTIONS]
        self.channel = (grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=tls_ca), options=options)
                        if tls_ca is not None else grpc.insecure_channel(address, options=options))
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        self.metadata = [("x-api-key", api_key)] if api_key else []
        self.timeout_s = timeout_s

    def __enter__(self) -> "DesignSearchClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def find_similar(self, image: bytes, k: int = 0, *, brands: Iterable[str] = (), year_min: int | None = None,
                     year_max: int | None = None, domain: str = "auto", no_cache: bool = False) -> gateway_pb2.FindSimilarResponse:
        """Most similar designs to ``image`` (encoded bytes).

        Raises:
            grpc.RpcError: INVALID_ARGUMENT for bad input, UNAVAILABLE when a backend is down.
        """
        filters = common_pb2.Filters(brands=list(brands))
        if year_min is not None:
            filters.year_min = year_min
        if year_max is not None:
            filters.year_max = year_max
        req = gateway_pb2.FindSimilarRequest(image=common_pb2.Image(content=image), k=k, filters=filters,
                                             domain=DOMAINS[domain], no_cache=no_cache)
        return self.stub.FindSimilar(req, timeout=self.timeout_s, metadata=self.metadata)

    def identify(self, image: bytes, neighbours: int = 0, domain: str = "auto") -> gateway_pb2.IdentifyResponse:
        """Brand / model / year candidates of ``image`` (top 5, vote shares). ``neighbours`` 0 = default 20.

        Raises:
            grpc.RpcError: INVALID_ARGUMENT for bad input, UNAVAILABLE when a backend is down.
        """
        req = gateway_pb2.IdentifyRequest(image=common_pb2.Image(content=image), neighbours=neighbours,
                                          domain=DOMAINS[domain])
        return self.stub.Identify(req, timeout=self.timeout_s, metadata=self.metadata)

    def novelty(self, image: bytes, k: int = 0, domain: str = "auto") -> gateway_pb2.GetNoveltyResponse:
        """1 − best cosine of ``image`` to the catalogue, with the ``k`` nearest designs (0 = default)."""
        req = gateway_pb2.GetNoveltyRequest(image=common_pb2.Image(content=image), k=k, domain=DOMAINS[domain])
        return self.stub.GetNovelty(req, timeout=self.timeout_s, metadata=self.metadata)

    def typicality(self, image: bytes, *, brands: Iterable[str] = (), year_min: int | None = None,
                   year_max: int | None = None, design_ids: Iterable[str] = (),
                   domain: str = "auto") -> gateway_pb2.GetTypicalityResponse:
        """Cosine of ``image`` to the mean embedding of a group (brands, a year range and/or designs)."""
        group = common_pb2.Filters(brands=list(brands), design_ids=list(design_ids))
        if year_min is not None:
            group.year_min = year_min
        if year_max is not None:
            group.year_max = year_max
        req = gateway_pb2.GetTypicalityRequest(image=common_pb2.Image(content=image), group=group, domain=DOMAINS[domain])
        return self.stub.GetTypicality(req, timeout=self.timeout_s, metadata=self.metadata)

    def list_designs(self, brands: Iterable[str] = (), page_size: int = 0,
                     page_token: str = "") -> gateway_pb2.ListDesignsResponse:
        """A page of catalogue designs (ordered by id); pass ``next_page_token`` back for the next one."""
        req = gateway_pb2.ListDesignsRequest(page_size=page_size, page_token=page_token,
                                             filters=common_pb2.Filters(brands=list(brands)))
        return self.stub.ListDesigns(req, timeout=self.timeout_s, metadata=self.metadata)

    def get_design(self, design_id: str) -> gateway_pb2.GetDesignResponse:
        """One design with its image count (NOT_FOUND when unknown)."""
        return self.stub.GetDesign(gateway_pb2.GetDesignRequest(design_id=design_id), timeout=self.timeout_s,
                                   metadata=self.metadata)

    def update_design(self, design_id: str, **changes) -> gateway_pb2.UpdateDesignResponse:
        """Change ``brand``, ``model``, ``year`` and/or ``attributes`` of a design (index payloads follow)."""
        from google.protobuf import field_mask_pb2

        design = common_pb2.DesignRecord(design_id=design_id, **{k: v for k, v in changes.items() if k != "attributes"})
        design.attributes.update(changes.get("attributes", {}))
        req = gateway_pb2.UpdateDesignRequest(design=design, update_mask=field_mask_pb2.FieldMask(paths=list(changes)))
        return self.stub.UpdateDesign(req, timeout=self.timeout_s, metadata=self.metadata)

    def delete_design(self, design_id: str) -> gateway_pb2.DeleteDesignResponse:
        """Remove a design: its points, images, thumbnails and feedback."""
        return self.stub.DeleteDesign(gateway_pb2.DeleteDesignRequest(design_id=design_id), timeout=self.timeout_s,
                                      metadata=self.metadata)

    def verify(self, first: bytes, second: bytes, domain: str = "auto") -> gateway_pb2.VerifyResponse:
        """Are two images (encoded bytes) the same design? ``domain`` of ``first``: auto, photo or sketch.

        Raises:
            grpc.RpcError: INVALID_ARGUMENT for bad input, FAILED_PRECONDITION when the live model has no
                calibration, UNAVAILABLE when a backend is down.
        """
        req = gateway_pb2.VerifyRequest(first=common_pb2.Image(content=first), second=common_pb2.Image(content=second),
                                        domain=DOMAINS[domain])
        return self.stub.Verify(req, timeout=self.timeout_s, metadata=self.metadata)

    def index(self, images: Iterable[LabelledImage], on_item: Callable[[], None] | None = None,
              timeout_s: float = 24 * 3600, move: bool = False) -> gateway_pb2.IndexDesignsResponse:
        """Stream labelled images to IndexDesigns; ``on_item`` is called as each one is sent;
        ``move`` re-labels images already catalogued under another design."""

        def requests() -> Iterator[gateway_pb2.IndexDesignsRequest]:
            for img in images:
                yield index_request(img, move)
                if on_item:
                    on_item()

        return self.stub.IndexDesigns(requests(), timeout=timeout_s, metadata=self.metadata)

    def stats(self) -> gateway_pb2.GetStatsResponse:
        """Catalogue counts."""
        return self.stub.GetStats(gateway_pb2.GetStatsRequest(), timeout=10, metadata=self.metadata)

    def dislike(self, query_id: str, design_id: str) -> None:
        """Feedback: ``design_id`` is not similar to the query ``query_id``."""
        self.stub.Dislike(gateway_pb2.DislikeRequest(query_id=query_id, design_id=design_id), timeout=10,
                          metadata=self.metadata)
