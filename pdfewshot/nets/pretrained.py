"""Starting a backbone from saved weights: a pdfewshot embedding, a ``paddle.vision`` state dict on disk,
or paddle.vision's ImageNet weights (``imagenet``, for resnet18, resnet50, vgg16 and mobilenet_v2),
fetched and cached by Paddle's own download code (``paddle.utils.download``) on a machine with a
network."""

from pathlib import Path

import paddle

from pdfewshot.config import IMAGENET
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets.backbones import FIRST_CONV, VISION_MODELS
from pdfewshot.nets.embedding import EmbeddingNet
from pdfewshot.storage.checkpoint import META_KEY, check_meta, read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta


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


def imagenet_weights(backbone: str = "resnet18") -> Path:
    """paddle.vision's ImageNet weights of ``backbone``: Paddle's cached copy, downloaded first when missing."""
    from paddle.utils.download import WEIGHTS_HOME, get_weights_path_from_url

    url, md5 = imagenet_url(backbone)
    try:
        return Path(get_weights_path_from_url(url, md5))
    except Exception as error:  # no network, a refused or broken download: Paddle raises assorted types
        expected = Path(WEIGHTS_HOME) / url.rsplit("/", 1)[-1]
        raise PdfewshotError(
            f"{IMAGENET}: cannot download paddle.vision's {backbone} ImageNet weights ({type(error).__name__}); "
            f"Paddle looks for them at {expected}: put a downloaded copy of {url} there, or give "
            "--pretrained PATH to a copy",
            "pretrained",
        ) from None


def load_trunk_weights(net: EmbeddingNet, source: str | Path, backbone: str, channels: int) -> None:
    """Starts the backbone from saved weights: a pdfewshot embedding checkpoint, a bare ``paddle.vision``
    state dict of the backbone's network, or ``imagenet``.

    A pdfewshot checkpoint must have been made with the same backbone and channels. A bare state dict
    (e.g. ImageNet weights) has its classifier dropped; its three-channel first convolution is summed
    over colour for a greyscale network.
    """
    path = imagenet_weights(backbone) if str(source) == IMAGENET else Path(source)
    if not path.is_file():
        raise PdfewshotError(f"{path}: no such file")
    try:
        state = paddle.load(str(path))
    except Exception as error:  # Paddle raises assorted types for a damaged file
        raise PdfewshotError(f"{path}: cannot read weights ({type(error).__name__})") from None
    if isinstance(state, dict) and META_KEY in state:
        state, meta = read_checkpoint(path, EmbeddingMeta)
        check_meta(meta, path, backbone=backbone, channels=channels)
        state = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    elif isinstance(state, dict):
        expected_keys = set(net.backbone.state_dict())
        state = {f"net.{k}": v for k, v in state.items() if f"net.{k}" in expected_keys}  # no classifier
    else:
        raise PdfewshotError(f"{path}: not a state dict of weights")
    expected = net.backbone.state_dict()
    conv = f"net.{FIRST_CONV.get(backbone, 'conv1')}.weight"
    if conv in state and conv in expected and state[conv].shape[1] == 3 and expected[conv].shape[1] == 1:
        state[conv] = state[conv].sum(axis=1, keepdim=True)
    mismatched = [k for k in expected if k not in state or list(state[k].shape) != list(expected[k].shape)]
    if mismatched:
        raise PdfewshotError(f"{path}: does not fit the {backbone} backbone ({mismatched[0]})")
    net.backbone.set_state_dict(state)
