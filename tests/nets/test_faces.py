"""The face networks ported from face-api.js, checked against the package's own outputs on the same images
(tests/fixtures/face_api_reference.json, made by benchmarks/face_api_reference.mjs), and the finder's
chips."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest
from PIL import Image

from pdfewshot.errors import PdfewshotError, UnusableImage
from pdfewshot.nets.faces.descriptor import MEAN_RGB, FaceRecognitionNet, load_descriptor
from pdfewshot.nets.faces.detector import MEAN_RGB as DETECTOR_MEAN
from pdfewshot.nets.faces.finder import FaceChips, FaceFinder, _resized, _scaled, _square
from pdfewshot.nets.faces.landmarks import MEAN_RGB as LANDMARKS_MEAN
from pdfewshot.nets.faces.search import PACKAGE_SEARCH, PACKAGE_SSD_SEARCH
from pdfewshot.nets.faces.ssd import SsdMobilenetV1, decode_ssd, load_ssd
from pdfewshot.nets.faces.ssd import scaled as ssd_scaled

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "weights" / "face-api" / "model"
REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "face_api_reference.json").read_text())
pytestmark = pytest.mark.skipif(not WEIGHTS.is_dir(), reason="needs ../shared/weights/face-api")


def reference_image(entry: dict[str, object]) -> np.ndarray:
    image = np.asarray(Image.open(SHARED / "data" / str(entry["image"])).convert("RGB"))
    rows = entry["rows_cols"]
    if isinstance(rows, list):
        image = image[rows[0] : rows[1], rows[2] : rows[3]]
    return np.ascontiguousarray(image)


@pytest.fixture(scope="module")
def nets() -> tuple[FaceFinder, FaceRecognitionNet]:
    finder, descriptor = FaceFinder(), FaceRecognitionNet()
    finder.load_face_api(WEIGHTS)
    load_descriptor(descriptor, WEIGHTS)
    finder.eval()
    descriptor.eval()
    return finder, descriptor


def as_input(image: np.ndarray, size: int, centred: bool, mean: tuple[float, float, float]) -> paddle.Tensor:
    pixels = paddle.to_tensor(image.transpose(2, 0, 1)[None].astype(np.float32))
    return _scaled(_resized(_square(pixels, centred), size), mean)


@pytest.mark.parametrize("entry", REFERENCE["images"], ids=lambda entry: entry["image"])
def test_each_network_agrees_with_face_api_js(
    nets: tuple[FaceFinder, FaceRecognitionNet], entry: dict[str, Any]
) -> None:
    finder, descriptor = nets
    image = reference_image(entry)
    with paddle.no_grad():
        detected = finder.detector(as_input(image, 416, False, DETECTOR_MEAN)).numpy()
        landmarks = finder.landmarks(as_input(image, 112, True, LANDMARKS_MEAN)).numpy()[0]
        described = descriptor(as_input(image, 150, True, MEAN_RGB)).numpy()[0]
    nhwc = detected.transpose(0, 2, 3, 1).ravel()  # TensorFlow's layout
    assert np.abs(nhwc[:200] - entry["detector_416_first_200"]).max() < 1e-4
    assert detected.sum() == pytest.approx(entry["detector_416_sum"], rel=1e-5)
    assert np.abs(landmarks - entry["landmarks_whole_image"]).max() < 1e-5
    assert np.abs(described - entry["descriptor_whole_image"]).max() < 1e-5


@pytest.mark.parametrize("entry", REFERENCE["images"], ids=lambda entry: entry["image"])
def test_the_face_pipeline_agrees_with_face_api_js(
    nets: tuple[FaceFinder, FaceRecognitionNet], entry: dict[str, Any]
) -> None:
    """At the package's own settings (416 px, its eyes-and-mouth box): the same box, landmarks and descriptor."""
    finder, descriptor = nets
    image = reference_image(entry)
    single = FaceFinder(PACKAGE_SEARCH)
    single.set_state_dict(finder.state_dict())
    face = single.find(image, "eyes-mouth")[0]
    x, y, w, h = entry["face"]["box_xywh"]
    assert np.allclose(face.box, (x, y, x + w, y + h), atol=1e-3)
    assert face.score == pytest.approx(entry["face"]["score"], abs=1e-5)
    assert np.abs(face.landmarks - np.array(entry["face"]["landmarks"])).max() < 0.01
    with paddle.no_grad():
        pixels = paddle.to_tensor(face.chip.transpose(2, 0, 1)[None].astype(np.float32))
        described = descriptor(_scaled(pixels, MEAN_RGB)).numpy()[0]
    expected = np.array(entry["face"]["descriptor_eyes_mouth"])
    cosine = described @ expected / np.linalg.norm(described) / np.linalg.norm(expected)
    assert cosine > 0.9999  # the chip is kept as uint8, face-api.js keeps floats


@pytest.fixture(scope="module")
def ssd_net() -> SsdMobilenetV1:
    net = SsdMobilenetV1()
    load_ssd(net, WEIGHTS)
    net.eval()
    return net


@pytest.mark.parametrize("entry", REFERENCE["images"], ids=lambda entry: entry["image"])
def test_ssd_mobilenet_agrees_with_face_api_js(ssd_net: SsdMobilenetV1, entry: dict[str, Any]) -> None:
    """The raw outputs (boxes decoded from the anchors, face scores) and the package's faces at its settings."""
    image, expected = reference_image(entry), entry["ssd_512"]
    pixels = paddle.to_tensor(image.transpose(2, 0, 1)[None].astype(np.float32))
    with paddle.no_grad():
        outputs = ssd_net(ssd_scaled(_resized(_square(pixels, False), 512))).numpy()[0]
    anchors = ssd_net.anchors.numpy()[0]
    sizes, centres = anchors[:, 2:] - anchors[:, :2], (anchors[:, :2] + anchors[:, 2:]) / 2
    middle, half = outputs[:, :2] / 10 * sizes + centres, np.exp(outputs[:, 2:4] / 5) * sizes / 2
    boxes = np.concatenate([middle - half, middle + half], axis=1)
    scores = 1 / (1 + np.exp(-outputs[:, 5]))
    assert np.abs(boxes.ravel()[:200] - expected["boxes_first_200"]).max() < 1e-5
    assert boxes.sum() == pytest.approx(expected["boxes_sum"], rel=1e-5)
    assert np.abs(scores[:200] - expected["scores_first_200"]).max() < 1e-5
    assert scores.sum() == pytest.approx(expected["scores_sum"], rel=1e-5)
    found = decode_ssd(outputs, anchors, image.shape[1], image.shape[0], 0.5)
    assert len(found) == len(expected["faces"]) == 1
    x, y, w, h = expected["faces"][0]["box_xywh"]
    assert np.allclose(found[0].box, (x, y, x + w, y + h), atol=1e-3)
    assert found[0].score == pytest.approx(expected["faces"][0]["score"], abs=1e-5)


def test_the_finder_runs_ssd_as_face_api_js_does(nets: tuple[FaceFinder, FaceRecognitionNet]) -> None:
    entry = REFERENCE["images"][1]
    finder = FaceFinder(PACKAGE_SSD_SEARCH)
    finder.load_face_api(WEIGHTS)
    finder.eval()
    (face,) = finder.locate(reference_image(entry))
    x, y, w, h = entry["ssd_512"]["faces"][0]["box_xywh"]
    assert np.allclose(face.box, (x, y, x + w, y + h), atol=1e-3)
    with pytest.raises(ValueError, match="detector 'yolo' is not one of tiny, ssd"):
        FaceFinder(replace(PACKAGE_SSD_SEARCH, detector="yolo"))


def test_chips_of_one_person_are_closer_than_of_another(nets: tuple[FaceFinder, FaceRecognitionNet]) -> None:
    finder, descriptor = nets
    chips = FaceChips(finder)
    people = SHARED / "data" / "lfw_dev"
    files = [people / "Abdullah_Gul" / f"Abdullah_Gul_000{i}.jpg" for i in (1, 2)]
    files.append(people / "Andre_Agassi" / "Andre_Agassi_0001.jpg")
    rows = np.stack([chips(Image.open(path), 150) for path in files])
    with paddle.no_grad():
        pixels = paddle.to_tensor(rows.transpose(0, 3, 1, 2).astype(np.float32))
        described = descriptor(_scaled(pixels, MEAN_RGB)).numpy()
    unit = described / np.linalg.norm(described, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2] + 0.05  # 0.94 against 0.84


def test_an_image_without_a_face_is_unusable(nets: tuple[FaceFinder, FaceRecognitionNet]) -> None:
    with pytest.raises(UnusableImage, match="no face found"):
        FaceChips(nets[0])(Image.new("RGB", (200, 160), (128, 128, 128)), 150)


def test_a_manifest_of_another_network_names_its_first_tensor(tmp_path: Path) -> None:
    with pytest.raises(PdfewshotError, match="tensor conv32_down/conv/filters is missing"):
        load_descriptor(FaceRecognitionNet(), WEIGHTS / "face_landmark_68_model-weights_manifest.json")


def test_the_descriptors_fast_path_is_built_and_run_in_silence(
    nets: tuple[FaceFinder, FaceRecognitionNet], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Paddle warned three times and oneDNN printed a bare line while the descriptor was saved for the fast path."""
    import warnings

    from pdfewshot.nets.runner import InferenceRunner, save_for_inference

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_for_inference(nets[1], 3, 150, str(tmp_path / "descriptor"))
        InferenceRunner(str(tmp_path / "descriptor"))(np.zeros((2, 150, 150, 3), np.uint8))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_package_folder_as_shipped_starts_the_face_route_with_its_pair_threshold(tmp_path: Path) -> None:
    from pdfewshot.config import PretrainConfig
    from pdfewshot.nets.pretrained import FACE_API_PAIRS, read_start_weights
    from pdfewshot.stages.pretrain import pretrain
    from pdfewshot.storage.checkpoint import read_checkpoint
    from pdfewshot.storage.metadata import EmbeddingMeta

    package = WEIGHTS.parent  # holds model/, as npm ships @vladmandic/face-api
    start = read_start_weights(package, None)
    assert start.faces and start.path == WEIGHTS and start.pairs == FACE_API_PAIRS
    out = tmp_path / "faces.pdparams"
    pretrain(PretrainConfig(pretrained=str(package), epochs=0, out=out, show_progress=False))
    assert read_checkpoint(out, EmbeddingMeta)[1].verification == FACE_API_PAIRS  # no data to choose one on
