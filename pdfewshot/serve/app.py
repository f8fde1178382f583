"""The HTTP API and the browser page of ``pdfewshot serve``, as a FastAPI application.

Every error is JSON, ``{"error": "one line naming what is wrong"}``, with a 4xx status, and a refused
request changes nothing. The endpoints that change the classifier take ``Authorization: Bearer TOKEN``
when the server was given a token.
"""

import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from pdfewshot import __version__
from pdfewshot.config import REJECT_SCORE_NAMES, PredictConfig, ServeConfig
from pdfewshot.errors import PdfewshotError
from pdfewshot.serve.api_docs import api_page
from pdfewshot.serve.service import ClassifierService, ServiceError, Upload
from pdfewshot.stages.predict import parse_threshold

PAGE = resources.files("pdfewshot.serve") / "page"

Images = Annotated[list[UploadFile], File(description="One or more image files.")]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _read_uploads(files: list[UploadFile], config: ServeConfig) -> list[Upload]:
    """The uploaded files, within the server's limits; a 4xx naming the file or limit otherwise."""
    if not files:
        raise ServiceError(400, "images: no files uploaded")
    if len(files) > config.max_images:
        raise ServiceError(413, f"images: {len(files)} files, at most {config.max_images} a request")
    limit = int(config.max_upload_mb * 1024 * 1024)
    uploads, total = [], 0
    for number, file in enumerate(files, 1):
        name = file.filename or f"image {number}"
        data = file.file.read(limit - total + 1)
        total += len(data)
        if total > limit:
            raise ServiceError(413, f"{name}: the upload is over the server's limit of {config.max_upload_mb:g} MB")
        if not data:
            raise ServiceError(400, f"{name}: empty file")
        uploads.append(Upload(name, data))
    return uploads


def create_app(service: ClassifierService, config: ServeConfig) -> FastAPI:
    """The application over ``service``; ``config`` gives the token and the upload limits."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        service.close()

    app = FastAPI(
        title="pdfewshot",
        version=__version__,
        description="Classify images with a few-shot classifier, teach it new classes, drop classes.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's Swagger UI comes from a CDN: blank offline; /docs is served from here instead
        redoc_url=None,
    )
    _answer_errors_in_json(app)
    _reading_routes(app, service, config)
    _predicting_and_changing_routes(app, service, config)
    app.mount("/static", StaticFiles(directory=str(PAGE)), name="static")
    return app


def _authorise(config: ServeConfig, authorization: str | None) -> None:
    """Nothing without a token; else a 401 or 403 unless ``authorization`` carries it."""
    if config.token is None:
        return
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not given:
        raise ServiceError(401, "this server changes its classifier only with its token (Authorization: Bearer)")
    if not secrets.compare_digest(given.encode(), config.token.encode()):
        raise ServiceError(403, "the token is wrong")


def _answer_errors_in_json(app: FastAPI) -> None:
    """Every error as ``{"error": "..."}`` with its status."""

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, error: ServiceError) -> JSONResponse:
        return _error(error.status, error.message)

    @app.exception_handler(PdfewshotError)
    async def user_error(_: Request, error: PdfewshotError) -> JSONResponse:
        return _error(400, str(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        given = f" {first['input']}" if isinstance(first.get("input"), (str, int, float)) else ""
        return _error(422, f"{where}{given}: {first.get('msg', 'invalid')}")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail))


def _reading_routes(app: FastAPI, service: ClassifierService, config: ServeConfig) -> None:
    """The page, and what the classifier is and knows."""

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (PAGE / "index.html").read_text(encoding="utf-8")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return api_page(app.openapi())

    @app.get("/health")
    def health() -> dict[str, Any]:
        """The model served, its classes and input, its threshold for unknown, whether it is the face route, the
        most images a request may carry, and the package version."""
        return {**service.health(), "max_images": config.max_images}

    @app.get("/classes")
    def classes() -> list[dict[str, Any]]:
        """Each class's name, support images, whether it was taught since finetune, and example images."""
        return [info.to_json() for info in service.classes()]

    @app.get("/classes/{name:path}/examples/{index}", responses={200: {"content": {"image/png": {}}}})
    def example(name: str, index: int) -> Response:
        """A thumbnail (PNG) of one of the images the class was made from."""
        return Response(service.example(name, index), media_type="image/png")


def _predicting_and_changing_routes(app: FastAPI, service: ClassifierService, config: ServeConfig) -> None:
    """Predictions, and teaching or forgetting classes (with the token, when the server has one)."""

    @app.post("/predict")
    def predict(
        images: Images,
        top_k: Annotated[int, Query(ge=1, description="Classes listed per image, most probable first.")] = 1,
        reject_below: Annotated[
            str | None,
            Query(
                description="Answer 'unknown' below this value of reject_score; 'suggested' (what is done when this is "
                "left out and the classifier stores a threshold): its own threshold; 'none': never 'unknown'."
            ),
        ] = None,
        reject_score: Annotated[
            str | None, Query(description=f"One of {', '.join(REJECT_SCORE_NAMES)}; default: the predictor's own.")
        ] = None,
    ) -> list[dict[str, Any]]:
        """Class and probability for each image, as ``pdfewshot predict --json`` prints them."""
        options = PredictConfig(
            inputs=[], model=service.model, top_k=top_k, reject_below=parse_threshold(reject_below),
            reject_score=reject_score,
        )  # fmt: skip
        uploads = _read_uploads(images, config)
        return [prediction.to_json() for prediction in service.predict(uploads, options)]

    @app.post("/classes/{name:path}")
    def teach(name: str, images: Images, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Teaches a new class from the images, or adds them to a class the classifier has; on the face route
        an image with no face is left out and named in 'skipped' (an error only when none has a face)."""
        _authorise(config, authorization)
        taught, skipped = service.teach(name, _read_uploads(images, config))
        return {"class": taught.name, "new": taught.new, "images": taught.images, "support": taught.total,
                "skipped": skipped}  # fmt: skip

    @app.get("/download/{kind}", responses={200: {"content": {"application/octet-stream": {}}}})
    def download(kind: str, authorization: Annotated[str | None, Header()] = None) -> Response:
        """The classifier with every class taught: 'predictor', its checkpoint (.pdparams, for pdfewshot predict
        --model and the Python API), or 'export', a zip of the folder pdfewshot export writes (paddle.inference)."""
        _authorise(config, authorization)
        data, name = service.download(kind)
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(data, media_type="application/octet-stream", headers=disposition)

    @app.delete("/classes/{name:path}")
    def forget(name: str, authorization: Annotated[str | None, Header()] = None) -> dict[str, Any]:
        """Drops a class (the last one only from a page started from an embedding, which goes back to no classes)."""
        _authorise(config, authorization)
        service.forget(name)
        return {"removed": name, "classes": len(service.classes())}


def check_address(host: str, port: int) -> None:
    """Fails with one line before any work when the server could not listen at ``host:port``."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise PdfewshotError(f"{port}: cannot listen on {host}:{port} ({error.strerror or error})", "port") from None


def serve(config: ServeConfig, announce: Callable[[str, str], None]) -> None:
    """Runs the server until Ctrl-C; ``announce`` is told what is served and the address once it is loaded."""
    import uvicorn

    if config.max_upload_mb <= 0:
        raise PdfewshotError(f"{config.max_upload_mb:g}: must be above 0", "max_upload_mb")
    check_address(config.host, config.port)
    service = ClassifierService(config.model, config.max_batch)
    app = create_app(service, config)
    shown_host = f"[{config.host}]" if ":" in config.host else config.host
    announce(service.description(), f"http://{shown_host}:{config.port}")
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


__all__ = ["check_address", "create_app", "serve"]
