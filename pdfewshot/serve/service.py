"""A served classifier: predictions batched across concurrent requests, and teaching that never loses a
change or shows a half-made one.

One worker thread runs everything that touches Paddle, in the order the requests came. Prediction
requests that wait while it is busy are taken together and scored in one forward pass. A change
(teach, forget) runs in the worker too, as ``support add/remove`` does it: under the checkpoint's lock,
read, change, write atomically, then the served classifier is swapped for the new one whole, so a
prediction sees the classifier before a change or after it, never between. Before each piece of work
the worker checks the checkpoint's file: when another process (``pdfewshot support add``, a second
server) has written it, the worker serves that.

Served an embedding checkpoint, the service starts with no classes (or with the predictor it was taught
before, kept beside the embedding): the first class taught makes that predictor, and dropping the last
class removes it again.

On the face route (a face checkpoint), every face of an uploaded image is answered, each with its box, and
an image without one is answered "no face found"; teaching takes each image's largest face.
"""

import io
import queue
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import UnidentifiedImageError

from pdfewshot import __version__
from pdfewshot.config import ExportConfig, PredictConfig
from pdfewshot.data.decoding import UNREADABLE, ImageTooLarge, decode_image, open_image, shape_picture
from pdfewshot.data.sources import read_by_key
from pdfewshot.errors import PdfewshotError, UnusableImage, about
from pdfewshot.nets.faces.finder import NO_FACE, Face, FaceChips
from pdfewshot.runtime import set_paddle_threads
from pdfewshot.stages.common import checkpoint_chips, first_few
from pdfewshot.stages.export import export
from pdfewshot.stages.faces import every_face
from pdfewshot.stages.predict import UNKNOWN, Prediction, Rejection, Scorer, label, open_scorer, rejection
from pdfewshot.stages.support import Taught, example_folders, remove_class, support_counts, teach
from pdfewshot.stages.test import manifest_path, read_manifest
from pdfewshot.storage.atomic import atomic_write
from pdfewshot.storage.checkpoint import checkpoint_kind, read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, PredictorMeta

T = TypeVar("T")

MAX_NAME_LENGTH = 64
THUMBNAIL_SIZE = 96
MAX_THUMBNAILS = 1024
IMAGE_SUFFIXES_BY_FORMAT = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp"}


class ServiceError(Exception):
    """A request the service refuses: the HTTP status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


DOWNLOADS = ("predictor", "export")  # what GET /download/{kind} gives


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the client gave it and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class ClassInfo:
    name: str
    support: int | None  # support images (None: not known, the predictor came without its manifest)
    taught: bool  # taught (or given more images) since finetune
    examples: int  # how many example images the service can show

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "support": self.support, "taught": self.taught, "examples": self.examples}


@dataclass(frozen=True)
class Served:
    """One version of the classifier, never changed once made: a change makes a new one."""

    scorer: Scorer | None  # None: no classes yet (an embedding served before its first class is taught)
    meta: PredictorMeta | None  # None for an export folder (which cannot be taught) and for no classes
    support: dict[str, int | None]
    support_keys: dict[str, list[str]]  # finetune's support images of each class (keys in meta.data)
    signature: tuple[int, int, int]


def check_class_name(name: str) -> None:
    """Refuses a class name that could not be a folder name of its own, or that reads as "unknown"."""
    if not name.strip():
        raise ServiceError(400, "class name: empty")
    if len(name) > MAX_NAME_LENGTH:
        raise ServiceError(400, f"class name: {len(name)} characters, at most {MAX_NAME_LENGTH}")
    if "/" in name or "\\" in name or name.startswith(".") or any(ord(c) < 32 for c in name):
        raise ServiceError(400, f"class name {name!r}: must not contain / or \\ or control characters, or start with .")
    if name == UNKNOWN:
        raise ServiceError(400, f"class name {name!r}: reserved for images of none of the classes")


def served_predictor(embedding: Path) -> Path:
    """Where a server started from an embedding checkpoint keeps the classifier it is taught: beside it."""
    return embedding.with_name(embedding.stem + ".predictor.pdparams")


def taught_folder(model: Path) -> Path:
    """Where the server keeps the images it was taught from, one folder a class, beside the checkpoint."""
    return model.with_name(model.stem + ".taught")


def _signature(path: Path) -> tuple[int, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0, 0)
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


@dataclass
class _Predict:
    uploads: Sequence[Upload]
    config: PredictConfig
    future: "Future[list[Prediction]]" = field(default_factory=Future)


@dataclass
class _Call:
    work: Callable[[], Any]
    future: "Future[Any]" = field(default_factory=Future)


class ClassifierService:
    """The classifier behind ``pdfewshot serve``: a predictor checkpoint (which can be taught), an embedding
    checkpoint (taught into a predictor beside it, :func:`served_predictor`) or an export folder (which can
    only predict)."""

    def __init__(self, model: Path, max_batch: int = 64) -> None:
        self.model = model  # the predictor served (beside the embedding, when an embedding was given)
        self.embedding: EmbeddingMeta | None = None  # the embedding a page without classes starts from
        self.embedding_path: Path | None = None
        self._embedding_chips: FaceChips | None = None  # the face route, before the first class is taught
        self.max_batch = max_batch
        self.can_teach = not model.is_dir()
        self._jobs: queue.Queue[_Predict | _Call | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="pdfewshot-classifier", daemon=True)
        self._thumbnails: dict[tuple[tuple[int, int, int], str, int], bytes] = {}
        self.batches: list[int] = []  # images per forward pass, for benchmarks and tests (last 1,000)
        self._worker.start()
        try:
            self.state: Served = self._call(self._start)
        except BaseException:
            self.close()
            raise

    # ----- what request threads call

    def predict(self, uploads: Sequence[Upload], config: PredictConfig) -> list[Prediction]:
        """Predictions for the uploaded images, scored together with other requests waiting then."""
        job = _Predict(uploads, config)
        self._jobs.put(job)
        return job.future.result()

    def current(self) -> Served:
        """The classifier served now, read anew when another process has changed the checkpoint."""
        return self._call(self._current)

    def classes(self) -> list[ClassInfo]:
        state = self.current()
        taught = state.meta.added_classes if state.meta is not None else {}
        return [
            ClassInfo(name, state.support.get(name), name in taught, len(self._example_sources(state, name)))
            for name in _class_names(state)
        ]

    def teach(self, name: str, uploads: Sequence[Upload]) -> tuple[Taught, list[str]]:
        """Teaches ``name`` from the uploaded images: a new class, or more images of one; on the face route an
        image with no face is left out (the names of those left out come back) unless none has one."""
        check_class_name(name)
        self._require_teachable()
        return self._call(lambda: self._teach(name, uploads))

    def forget(self, name: str) -> None:
        """Drops class ``name``."""
        self._require_teachable()
        return self._call(lambda: self._forget(name))

    def example(self, name: str, index: int) -> bytes:
        """A PNG thumbnail of the ``index``-th support image of class ``name``."""
        state = self.current()
        if name not in _class_names(state):
            raise ServiceError(404, f"class {name!r}: no such class")
        sources = self._example_sources(state, name)
        if not 0 <= index < len(sources):
            raise ServiceError(404, f"class {name!r}: has {len(sources)} example images, no number {index}")
        key = (state.signature, name, index)
        if key not in self._thumbnails:
            if len(self._thumbnails) >= MAX_THUMBNAILS:
                self._thumbnails.clear()
            self._thumbnails[key] = _thumbnail(name, index, sources[index])
        return self._thumbnails[key]

    def download(self, kind: str) -> tuple[bytes, str]:
        """The classifier as it stands, with every class taught, and a file name for it: ``predictor``, its
        checkpoint (what ``pdfewshot predict --model`` and the Python API read), or ``export``, a zip of the
        folder ``pdfewshot export`` writes (for ``paddle.inference``)."""
        if kind not in DOWNLOADS:
            raise ServiceError(404, f"{kind}: no such download; there are {', '.join(DOWNLOADS)}")
        if self.current().scorer is None:
            raise ServiceError(409, "no classes yet: teach one first")
        if kind == "predictor":
            if not self.can_teach:
                raise ServiceError(409, f"{self.model}: an export folder is served; download the export")
            return self._call(self.model.read_bytes), self.model.name
        return self._call(self._export_zip), f"{self.model.stem}-export.zip"

    def _export_zip(self) -> bytes:
        with tempfile.TemporaryDirectory(prefix="pdfewshot-download-") as folder:
            exported = (
                self.model if self.model.is_dir() else export(ExportConfig(model=self.model, out=Path(folder) / "x"))
            )
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(p for p in exported.rglob("*") if p.is_file()):
                    archive.write(path, f"{self.model.stem}-export/{path.relative_to(exported).as_posix()}")
            return buffer.getvalue()

    def health(self) -> dict[str, Any]:
        state = self.current()
        image_size, channels = self._input(state)
        return {
            "status": "ok",
            "model": str(self.model),
            "embedding": str(self.embedding_path) if self.embedding_path else None,
            "kind": "predictor" if self.can_teach else "export",
            "classes": len(_class_names(state)),
            "image_size": image_size,
            "channels": channels,
            "reject_score": state.scorer.reject_score if state.scorer else None,
            "suggested_reject_below": state.scorer.suggested_reject_below if state.scorer else None,
            "can_teach": self.can_teach,
            "faces": (state.scorer.chips if state.scorer else self._embedding_chips) is not None,
            "version": __version__,
        }

    def description(self) -> str:
        """What is served, in a few words, for the line that says the server is up."""
        if self.embedding_path is None:
            return str(self.model)
        classes = len(_class_names(self.current()))
        return f"{self.embedding_path} ({classes} classes, taught into {self.model})"

    def close(self) -> None:
        self._jobs.put(None)
        self._worker.join(timeout=30)

    # ----- the worker

    def _call(self, work: Callable[[], T]) -> T:
        job = _Call(work)
        self._jobs.put(job)
        result: T = job.future.result()
        return result

    def _work(self) -> None:
        set_paddle_threads()
        while True:
            job = self._jobs.get()
            if job is None:
                return
            taken: list[_Predict | _Call] = [job]
            stop = False
            if isinstance(job, _Predict):
                images = len(job.uploads)
                while images < self.max_batch:  # the predictions that waited meanwhile go in one pass
                    try:
                        following = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if following is None:
                        stop = True
                        break
                    taken.append(following)
                    if not isinstance(following, _Predict):
                        break
                    images += len(following.uploads)
            predictions = [j for j in taken if isinstance(j, _Predict)]
            if predictions:
                self._guarded(predictions, partial(self._predict, predictions))
            for call in (j for j in taken if isinstance(j, _Call)):
                self._guarded([call], partial(self._run_call, call))
            if stop:
                return

    @staticmethod
    def _guarded(jobs: Sequence[_Predict | _Call], work: Callable[[], object]) -> None:
        """Runs ``work``; an exception goes to the jobs it was for (not to the worker, which goes on)."""
        try:
            work()
        except BaseException as error:
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)

    def _run_call(self, call: _Call) -> None:
        if call.work != self._start:
            self._refresh()
        call.future.set_result(call.work())

    def _current(self) -> Served:
        return self.state

    def _refresh(self) -> None:
        """Serves the checkpoint anew when another process has written it since it was read."""
        if _signature(self._watched()) != self.state.signature:
            self.state = self._load()

    def _watched(self) -> Path:
        return self.model if self.can_teach else self.model / "pdfewshot.json"

    def _start(self) -> Served:
        """The first state: an embedding checkpoint is served through the predictor beside it (none yet:
        no classes); a predictor or an export folder as it is."""
        if self.can_teach:
            with about("model"):
                if checkpoint_kind(self.model) == EmbeddingMeta.KIND:
                    _, self.embedding = read_checkpoint(self.model, EmbeddingMeta)
                    self.embedding_path, self.model = self.model, served_predictor(self.model)
        return self._load()

    def _chips(self, state: Served) -> FaceChips | None:
        """The face route's chips of the served classifier, or of the embedding before any class is taught."""
        if state.scorer is not None:
            return state.scorer.chips
        if self.embedding is None or self.embedding.face_alignment is None or self.embedding_path is None:
            return None
        if self._embedding_chips is None:
            with about("model"):
                embedding_state, meta = read_checkpoint(self.embedding_path, EmbeddingMeta)
                self._embedding_chips = checkpoint_chips(embedding_state, meta)
        return self._embedding_chips

    def _input(self, state: Served) -> tuple[int, int]:
        """The image size and channels the classifier takes."""
        if state.scorer is not None:
            return state.scorer.image_size, state.scorer.channels
        assert self.embedding is not None, "only a page started from an embedding has no scorer"
        return self.embedding.image_size, self.embedding.channels

    def _load(self) -> Served:
        signature = _signature(self._watched())
        if self.embedding is not None and not self.model.exists():
            return Served(None, None, {}, {}, signature)
        with about("model"):
            scorer = open_scorer(self.model)
            if not self.can_teach:
                return Served(scorer, None, {name: None for name in scorer.class_names}, {}, signature)
            _, meta = read_checkpoint(self.model, PredictorMeta)
            manifest = read_manifest(self.model, meta) if manifest_path(self.model, meta).is_file() else None
        keys: dict[str, list[str]] = {}
        for item in manifest.support if manifest is not None else []:
            keys.setdefault(item.class_name, []).append(item.key)
        return Served(scorer, meta, support_counts(meta, manifest), keys, signature)

    def _predict(self, jobs: Sequence[_Predict]) -> None:
        self._refresh()
        scorer = self.state.scorer
        if scorer is None:
            for job in jobs:
                job.future.set_exception(ServiceError(409, "no classes yet: teach one first (POST /classes/NAME)"))
            return
        decoded: list[tuple[_Predict, np.ndarray, list[tuple[str, Face | None]], Rejection | None]] = []
        for job in jobs:
            try:  # a request's bad option or image fails that request alone
                rule = rejection(job.config, scorer)
                arrays, rows = _rows(job.uploads, scorer.image_size, scorer.channels, scorer.chips)
                decoded.append((job, arrays, rows, rule))
            except (PdfewshotError, ServiceError) as error:
                job.future.set_exception(error)
        if not decoded:
            return
        everything = [arrays for _, arrays, _, _ in decoded if len(arrays)]
        outputs = scorer.outputs(np.concatenate(everything)) if everything else np.zeros((0, 0), np.float32)
        self.batches = [*self.batches[-999:], len(outputs)]
        start = 0
        for job, arrays, rows, rule in decoded:
            part = outputs[start : start + len(arrays)]
            start += len(arrays)
            logits, known = scorer.read(part, rule.score if rule is not None else None)
            names = [name for name, face in rows if face is not None or scorer.chips is None]
            labelled = iter(label(names, logits, known, scorer.class_names, job.config.top_k, rule))
            job.future.set_result(_per_face(rows, labelled, scorer.chips is not None))

    def _teach(self, name: str, uploads: Sequence[Upload]) -> tuple[Taught, list[str]]:
        known = _class_names(self.state)
        arrays, uploads, skipped = _decode_teachable(uploads, *self._input(self.state), self._chips(self.state))
        folder = taught_folder(self.model) / name
        if name not in known and folder.exists():
            shutil.rmtree(folder)  # images of an earlier class of this name, since removed
        folder.mkdir(parents=True, exist_ok=True)
        first = len(list(folder.iterdir()))
        written = []
        for number, upload in enumerate(uploads, first):
            path = folder / f"{number:04d}{_suffix(upload.data)}"
            atomic_write(path, partial(_write_bytes, upload.data))
            written.append(path)
        try:
            taught = teach(self.model, name, arrays, folder, self.embedding_path)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        self.state = self._load()
        return taught, skipped

    def _forget(self, name: str) -> None:
        known = _class_names(self.state)
        if name not in known:
            raise ServiceError(404, f"class {name!r}: no such class")
        last_too = self.embedding is not None  # a page started from an embedding goes back to no classes
        if len(known) == 1 and not last_too:
            raise ServiceError(409, f"class {name!r}: it is the only class; a classifier needs at least one")
        with about("name"):
            remove_class(self.model, name, last_too)
        folder = taught_folder(self.model) / name
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        self.state = self._load()

    def _require_teachable(self) -> None:
        if not self.can_teach:
            raise ServiceError(
                409, f"{self.model}: an export folder can only predict; serve a predictor checkpoint to teach it"
            )

    def _example_sources(self, state: Served, name: str) -> list[Callable[[], bytes | np.ndarray | None]]:
        """Loaders of the images a class was made from: finetune's support images, then taught ones."""
        if state.meta is None:
            return []
        loaders: list[Callable[[], bytes | np.ndarray | None]] = []
        data = list(state.meta.data)
        loaders.extend(partial(read_by_key, data, key) for key in state.support_keys.get(name, []))
        for folder in example_folders(state.meta, name):
            if folder.is_dir():
                files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
                loaders.extend(partial(_read_if_there, path) for path in files)
        return loaders


def _class_names(state: Served) -> list[str]:
    return list(state.scorer.class_names) if state.scorer is not None else []


def _read_if_there(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _decode(uploads: Sequence[Upload], image_size: int, channels: int, chips: FaceChips | None = None) -> np.ndarray:
    """The uploads as the network takes them (on the face route: each one's largest face); the first that is
    not an image, or shows no face, is a 400 naming it."""
    arrays = []
    for upload in uploads:
        with _refused(upload):
            arrays.append(shape_picture(decode_image(upload.data), image_size, channels, chips))
    return np.stack(arrays)


def _decode_teachable(
    uploads: Sequence[Upload], image_size: int, channels: int, chips: FaceChips | None
) -> tuple[np.ndarray, list[Upload], list[str]]:
    """The uploads to teach from, as :func:`_decode`, except that on the face route one with no face is left
    out (a camera's frames of a moving person): the rows, the uploads kept and the names of those left out;
    a 400 when no upload has a face."""
    if chips is None:
        return _decode(uploads, image_size, channels), list(uploads), []
    arrays, kept, skipped = [], [], []
    for upload in uploads:
        with _refused(upload):
            picture = decode_image(upload.data)
        try:
            arrays.append(shape_picture(picture, image_size, channels, chips))
            kept.append(upload)
        except UnusableImage:  # no face found
            skipped.append(upload.filename)
    if len(skipped) == 1 and not kept:
        raise ServiceError(400, f"{skipped[0]}: {NO_FACE}")
    if not kept:
        raise ServiceError(400, f"{NO_FACE} in any of the {len(uploads)} images ({first_few(skipped)})")
    return np.stack(arrays), kept, skipped


@contextmanager
def _refused(upload: Upload) -> Iterator[None]:
    """An upload that is not an image, cannot be read, or shows no face: a 400 naming it."""
    try:
        yield
    except UnidentifiedImageError:
        raise ServiceError(400, f"{upload.filename}: not an image (Pillow cannot identify it)") from None
    except ImageTooLarge as error:
        raise ServiceError(413, f"{upload.filename}: too large: {error}") from None
    except UNREADABLE as error:
        raise ServiceError(400, f"{upload.filename}: unreadable image ({error})") from None
    except UnusableImage as error:
        raise ServiceError(400, f"{upload.filename}: {error}") from None


def _rows(
    uploads: Sequence[Upload], image_size: int, channels: int, chips: FaceChips | None
) -> tuple[np.ndarray, list[tuple[str, Face | None]]]:
    """The rows to score and, for each, its upload's name and face; on the face route every face of each
    upload is a row, and an upload without one is listed with no face and no row."""
    if chips is None:
        return _decode(uploads, image_size, channels), [(upload.filename, None) for upload in uploads]
    arrays: list[np.ndarray] = []
    rows: list[tuple[str, Face | None]] = []
    for upload in uploads:
        with _refused(upload):
            faces = every_face(chips, upload.data, image_size)
        arrays += [face.chip for face in faces]
        rows += [(upload.filename, face) for face in faces] if faces else [(upload.filename, None)]
    empty = np.zeros((0, image_size, image_size, channels), dtype=np.uint8)
    return (np.stack(arrays) if arrays else empty), rows


def _per_face(rows: list[tuple[str, Face | None]], labelled: Iterator[Prediction], faces: bool) -> list[Prediction]:
    """The predictions of the rows, with each face's box; "no face found" for an upload without a face."""
    if not faces:
        return list(labelled)
    return [
        replace(next(labelled), box=face.box) if face is not None else Prediction(name, [], NO_FACE)
        for name, face in rows
    ]


def _write_bytes(data: bytes, path: str) -> None:
    Path(path).write_bytes(data)


def _suffix(data: bytes) -> str:
    with open_image(data) as image:
        return IMAGE_SUFFIXES_BY_FORMAT.get(str(image.format), ".png")


def _thumbnail(name: str, index: int, load: Callable[[], bytes | np.ndarray | None]) -> bytes:
    raw = load()
    if raw is None:
        raise ServiceError(404, f"class {name!r}: example image {index} is no longer where it was")
    try:
        image = decode_image(raw)
    except UNREADABLE as error:
        raise ServiceError(404, f"class {name!r}: example image {index} is unreadable ({error})") from None
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    out = io.BytesIO()
    image.convert("L" if image.mode in ("L", "1", "I", "I;16") else "RGB").save(out, format="PNG")
    return out.getvalue()


__all__ = [
    "ClassInfo", "ClassifierService", "ServiceError", "Upload", "check_class_name", "served_predictor", "taught_folder",
]  # fmt: skip
