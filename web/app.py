"""The designer's web page: upload a draft, see the most similar catalogue designs; Verify, Identify,
Novelty; dislike a result; download a verification record.

A Starlette application (Jinja templates, a little plain JavaScript in ``static/``, nothing from a
CDN). Its only data path is the public gRPC API of the gateway (``designsearch.v1.GatewayService``)
with the same API-key model as every other client: the browser's key (header ``X-API-Key``, kept in
the page's local storage) is forwarded as gRPC metadata ``x-api-key``; without one, the server's
configured key (``DESIGNSEARCH_WEB_API_KEY``) is used. Gateway errors become HTTP errors with a JSON
body ``{"error": CODE, "message": ..., "reason": ...}`` (INVALID_ARGUMENT → 400, UNAUTHENTICATED →
401, NOT_FOUND → 404, RESOURCE_EXHAUSTED → 429, UNAVAILABLE → 503, DEADLINE_EXCEEDED → 504, other → 502).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from designsearch.client import DOMAINS, error_reason
from designsearch.converters import box_from_proto
from designsearch.logs import configure_logging, get_logger
from designsearch.rpc import BALANCED_RETRY_OPTIONS
from designsearch.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from designsearch.web.config import WebSettings

HERE = Path(__file__).resolve().parent
DOMAIN_NAMES = {v: k for k, v in DOMAINS.items()}
KIND_NAMES = {common_pb2.CROP_KIND_WHEEL: "wheel", common_pb2.CROP_KIND_CLOSEUP: "closeup",
              common_pb2.CROP_KIND_WHOLE_IMAGE: "whole_image", common_pb2.CROP_KIND_UNSPECIFIED: "unspecified"}
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
log = get_logger("web")

try:
    VERSION = importlib.metadata.version("designsearch")
except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "dev"


class BadRequest(Exception):
    """A request the page server refuses before calling the gateway (HTTP 400 or ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets HTTP 413 (checked on Content-Length and
    on the bytes actually received, so a chunked upload cannot get around it)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = JSONResponse({"error": "PAYLOAD_TOO_LARGE",
                                  "message": f"upload larger than {self.max_bytes / 2**20:.0f} MiB"}, status_code=413)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        received, started = 0, False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BadRequest("too large", 413)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BadRequest as err:
            if err.status != 413 or started:
                raise
            await too_large(scope, receive, send)


def _box(b: common_pb2.BoundingBox) -> list[int]:
    return list(box_from_proto(b))


def _jpeg_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode() if data else ""


def match_json(m: gateway_pb2.Match) -> dict[str, Any]:
    """One result as JSON: design labels, fused score, query box, catalogue image id and box, thumbnail
    (the matched catalogue crop) as a ``data:`` URL."""
    d = m.design
    return {"design_id": d.design_id, "brand": d.brand, "model": d.model, "year": d.year, "score": round(m.score, 4),
            "query_box": _box(m.query_box), "image_id": m.image_id, "catalogue_box": _box(m.catalogue_box),
            "thumbnail": _jpeg_url(m.thumbnail), "source": m.source}


def _int(form: FormData, name: str, default: int | None = None, lo: int = -10**9, hi: int = 10**9) -> int | None:
    raw = str(form.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw[:40]!r}") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


async def _image(form: FormData, name: str = "image") -> common_pb2.Image:
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise BadRequest(f"no image: choose, drop or paste a picture ({name!r} missing)")
    content = await upload.read()
    if not content:
        raise BadRequest(f"the file {upload.filename or name!r} is empty")
    return common_pb2.Image(content=content, source=(upload.filename or "")[:200])


def _domain(form: FormData) -> int:
    name = str(form.get("domain") or "auto")
    if name not in DOMAINS:
        raise BadRequest(f"domain must be one of {', '.join(DOMAINS)}, got {name[:40]!r}")
    return DOMAINS[name]


def _filters(form: FormData) -> common_pb2.Filters:
    brands = [b.strip() for b in str(form.get("brands") or "").split(",") if b.strip()]
    filters = common_pb2.Filters(brands=brands)
    year_min, year_max = _int(form, "year_min", lo=1800, hi=2200), _int(form, "year_max", lo=1800, hi=2200)
    if year_min is not None:
        filters.year_min = year_min
    if year_max is not None:
        filters.year_max = year_max
    return filters


class WebApp:
    """The page server's state: one gRPC channel to the gateway, shared by all requests.

    Args:
        settings: see :class:`~designsearch.web.config.WebSettings`.
    """

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self.channel: grpc.aio.Channel | None = None
        self.stub: gateway_pb2_grpc.GatewayServiceStub | None = None
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette):
        """Open the gateway channel on start-up, close it on shutdown."""
        # round_robin over every gateway pod behind a dns:/// target (or ipv4:A,B), a call that fails UNAVAILABLE
        # retried on the next gateway: the service config of designsearch.rpc's internal channels
        options = [*BALANCED_RETRY_OPTIONS, ("grpc.max_receive_message_length", 64 * 2**20),
                   ("grpc.max_send_message_length", 64 * 2**20)]
        if self.settings.tls_ca_file:
            creds = grpc.ssl_channel_credentials(root_certificates=Path(self.settings.tls_ca_file).read_bytes())
            self.channel = grpc.aio.secure_channel(self.settings.gateway_address, creds, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(self.settings.gateway_address, options=options)
        self.stub = gateway_pb2_grpc.GatewayServiceStub(self.channel)
        try:
            yield
        finally:
            await self.channel.close()

    # --- plumbing -------------------------------------------------------------------------------
    def _metadata(self, request: Request) -> list[tuple[str, str]]:
        key = request.headers.get("x-api-key") or self.settings.api_key
        return [("x-api-key", key)] if key else []

    async def _call(self, request: Request, method: str, message) -> Any:
        return await getattr(self.stub, method)(message, timeout=self.settings.timeout_s, metadata=self._metadata(request))

    async def _form(self, request: Request) -> FormData:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequest("send the image as multipart/form-data")
        return await request.form(max_files=2, max_fields=20)

    @staticmethod
    def error_response(err: Exception) -> JSONResponse:
        """The JSON error of a refused request or a failed gateway call (see the module docstring)."""
        if isinstance(err, BadRequest):
            return JSONResponse({"error": "INVALID_ARGUMENT" if err.status == 400 else "REFUSED", "message": str(err)},
                                status_code=err.status)
        assert isinstance(err, grpc.RpcError)
        body = {"error": err.code().name, "message": err.details() or ""}
        reason = error_reason(err)
        if reason:
            body["reason"] = reason
        return JSONResponse(body, status_code=HTTP_STATUS.get(err.code(), 502))

    def endpoint(self, handler):
        """Wrap a handler: refused input and gateway errors become JSON errors; anything else is logged
        and answered with HTTP 500 (the server keeps running)."""

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except (BadRequest, grpc.RpcError) as err:
                return self.error_response(err)
            except Exception:  # noqa: BLE001 - a request never takes the server down
                log.exception("web request failed", path=request.url.path)
                return JSONResponse({"error": "INTERNAL", "message": "internal error of the page server"}, status_code=500)

        return run

    # --- pages and API ----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        """The page."""
        return self.templates.TemplateResponse(request, "index.html", {
            "max_upload_mb": self.settings.max_upload_mb, "version": VERSION})

    async def livez(self, request: Request) -> Response:
        """200 while the process serves HTTP (liveness: does not depend on the gateway)."""
        return JSONResponse({"status": "ok"})

    async def healthz(self, request: Request) -> Response:
        """200 when the gateway answers GetStats, else 503 with the gateway's error."""
        stats = await self._call(request, "GetStats", gateway_pb2.GetStatsRequest())
        return JSONResponse({"status": "ok", "designs": stats.designs})

    async def stats(self, request: Request) -> Response:
        """Catalogue size and the live embedder version."""
        s = await self._call(request, "GetStats", gateway_pb2.GetStatsRequest())
        return JSONResponse({"designs": s.designs, "images": s.images, "points": s.points,
                             "embedder_version": s.embedder_version, "collection": s.collection})

    async def _find_similar(self, request: Request, form: FormData) -> tuple[common_pb2.Image, Any]:
        image = await _image(form)
        req = gateway_pb2.FindSimilarRequest(image=image, k=_int(form, "k", 6, 1, 100), filters=_filters(form),
                                             domain=_domain(form))
        return image, await self._call(request, "FindSimilar", req)

    @staticmethod
    def search_json(r: gateway_pb2.FindSimilarResponse) -> dict[str, Any]:
        """FindSimilar as JSON: matches, the query's regions, detected domain, timings, versions."""
        return {"matches": [match_json(m) for m in r.matches],
                "query_crops": [{"box": _box(c.box), "kind": KIND_NAMES.get(c.kind, "unspecified"),
                                 "score": round(c.score, 3)} for c in r.query_crops],
                "domain": DOMAIN_NAMES.get(r.domain, "auto"), "cache_hit": r.cache_hit,
                "embedder_version": r.embedder_version, "query_id": r.query_id,
                "timings_ms": {k: round(v, 1) for k, v in r.timings_ms.items()}}

    async def search(self, request: Request) -> Response:
        """FindSimilar on the uploaded draft (form: image, k, domain, brands, year_min, year_max)."""
        _, r = await self._find_similar(request, await self._form(request))
        return JSONResponse(self.search_json(r))

    async def report(self, request: Request) -> Response:
        """A verification record to file: a self-contained HTML page (printable to PDF) of the draft,
        its matches and scores, the date, the catalogue size and the model version."""
        form = await self._form(request)
        image, r = await self._find_similar(request, form)
        stats = await self._call(request, "GetStats", gateway_pb2.GetStatsRequest())
        now = dt.datetime.now(dt.timezone.utc)
        mime = "image/png" if image.content[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
        html = self.templates.get_template("report.html").render(
            result=self.search_json(r), stats=stats, created=now.strftime("%Y-%m-%d %H:%M:%S UTC"),
            draft_url=f"data:{mime};base64," + base64.b64encode(image.content).decode(),
            draft_name=image.source or "draft", draft_sha256=hashlib.sha256(image.content).hexdigest(),
            filters={"brands": str(form.get("brands") or ""), "year_min": form.get("year_min") or "",
                     "year_max": form.get("year_max") or "", "domain": str(form.get("domain") or "auto")},
            gateway=self.settings.gateway_address, version=VERSION)
        name = f"designsearch-record-{now.strftime('%Y%m%d-%H%M%S')}.html"
        return HTMLResponse(html, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def dislike(self, request: Request) -> Response:
        """Dislike (JSON ``{"query_id", "design_id"}``): the design leaves this caller's later results."""
        try:
            body = await request.json()
            query_id, design_id = str(body["query_id"]), str(body["design_id"])
        except (ValueError, KeyError, TypeError):
            raise BadRequest('send JSON {"query_id": ..., "design_id": ...}') from None
        await self._call(request, "Dislike", gateway_pb2.DislikeRequest(query_id=query_id, design_id=design_id))
        return JSONResponse({"ok": True})

    async def verify(self, request: Request) -> Response:
        """Verify two images (form: first, second, domain): similarity and the calibrated decision."""
        form = await self._form(request)
        req = gateway_pb2.VerifyRequest(first=await _image(form, "first"), second=await _image(form, "second"),
                                        domain=_domain(form))
        r = await self._call(request, "Verify", req)
        return JSONResponse({"similarity": round(r.similarity, 4), "same_design": r.same_design,
                             "threshold": round(r.threshold, 4), "domain": DOMAIN_NAMES.get(r.domain, "auto"),
                             "embedder_version": r.embedder_version, "false_accept_rate": round(r.false_accept_rate, 4),
                             "false_reject_rate": round(r.false_reject_rate, 4),
                             "equal_error_rate": round(r.equal_error_rate, 4)})

    async def identify(self, request: Request) -> Response:
        """Identify (form: image, domain): brand / model / year candidates with vote shares."""
        form = await self._form(request)
        req = gateway_pb2.IdentifyRequest(image=await _image(form), domain=_domain(form), filters=_filters(form))
        r = await self._call(request, "Identify", req)
        return JSONResponse({"candidates": [{"brand": c.brand, "model": c.model, "year": c.year,
                                             "vote_share": round(c.vote_share, 4), "best_score": round(c.best_score, 4),
                                             "design_ids": list(c.design_ids)} for c in r.candidates],
                             "embedder_version": r.embedder_version, "query_id": r.query_id})

    async def novelty(self, request: Request) -> Response:
        """Novelty (form: image, k, domain): 1 - best cosine to the catalogue, with the nearest designs."""
        form = await self._form(request)
        req = gateway_pb2.GetNoveltyRequest(image=await _image(form), k=_int(form, "k", 6, 1, 100),
                                            domain=_domain(form), filters=_filters(form))
        r = await self._call(request, "GetNovelty", req)
        return JSONResponse({"novelty": round(r.novelty, 4), "nearest": [match_json(m) for m in r.nearest],
                             "embedder_version": r.embedder_version, "query_id": r.query_id})


def create_app(settings: WebSettings | None = None) -> Starlette:
    """The ASGI application of the page.

    Args:
        settings: defaults to :class:`WebSettings` from the environment.
    """
    settings = settings or WebSettings()
    web = WebApp(settings)
    api = [("/api/search", web.search), ("/api/report", web.report), ("/api/dislike", web.dislike),
           ("/api/verify", web.verify), ("/api/identify", web.identify), ("/api/novelty", web.novelty)]
    routes = [Route("/", web.index), Route("/livez", web.livez), Route("/healthz", web.endpoint(web.healthz)),
              Route("/api/stats", web.endpoint(web.stats)),
              *[Route(path, web.endpoint(handler), methods=["POST"]) for path, handler in api],
              Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")]
    app = Starlette(routes=routes, lifespan=web.lifespan)
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_upload_mb * 2**20) * 2 + 65536)
    app.state.web = web
    return app


def serve(settings: WebSettings | None = None) -> None:
    """Run the page with uvicorn until SIGTERM (graceful stop, exit status 0, as the gRPC services) or
    Ctrl-C (blocks)."""
    import signal

    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if sig == signal.SIGTERM:  # uvicorn would re-raise it after the graceful stop (exit status -15)
                self.should_exit = True
            else:
                super().handle_exit(sig, frame)

    settings = settings or WebSettings()
    configure_logging(settings.log_level, settings.log_json)
    log.info("web page", url=f"http://{settings.host}:{settings.port}/", gateway=settings.gateway_address)
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=settings.log_level.lower(), ssl_certfile=settings.tls_cert_file or None,
                            ssl_keyfile=settings.tls_key_file or None, timeout_graceful_shutdown=int(settings.grace_s))
    Server(config).run()
    log.info("stopped")
