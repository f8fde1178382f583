"""The Python API (pdfewshot.pretrain, finetune, evaluate, load; Embedding, Classifier) over the stages, and
the examples/ scripts, which run on tiny data."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from paddle.vision.models import mobilenet_v2
from PIL import Image

import pdfewshot
from pdfewshot.errors import PdfewshotError
from tests.conftest import make_flat, write_image

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes of four colour images that differ by class, and a start file of ImageNet's kind."""
    root = tmp_path_factory.mktemp("api")
    make_flat(root / "photos", classes=3, per_class=4, mode="RGB")
    paddle.seed(0)
    paddle.save(mobilenet_v2().state_dict(), str(root / "imagenet.pdparams"))
    return root


def test_pretrain_finetune_predict_and_teach_through_the_api(photos: Path) -> None:
    embedding = pdfewshot.pretrain(pretrained=str(photos / "imagenet.pdparams"), epochs=0, image_size=32,
                                   out=photos / "m" / "e.pdparams", show_progress=False)  # fmt: skip
    assert isinstance(embedding, pdfewshot.Embedding)
    vectors = embedding.embed([photos / "photos" / "class0" / "img0.png", np.zeros((20, 20, 3), np.uint8)])
    assert vectors.shape == (2, 1280) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    classifier = pdfewshot.finetune(embedding, data=photos / "photos", shot=2, steps=5,
                                    out=photos / "m" / "p.pdparams", show_progress=False)  # fmt: skip
    assert classifier.classes == ["class0", "class1", "class2"]
    image = Image.open(photos / "photos" / "class2" / "img3.png")
    assert classifier.predict(image)[0].label in classifier.classes
    taught = classifier.add_class("mug", [np.full((16, 16, 3), 250 - i, np.uint8) for i in range(3)])
    assert taught.new and taught.images == 3
    assert pdfewshot.load(photos / "m" / "p.pdparams").classes == [*classifier.classes]
    assert "mug" in classifier.classes
    result = pdfewshot.evaluate(embedding, data=photos / "photos", way=3, shot=[1], query=2, episodes=4,
                                method=["prototype"], show_progress=False)  # fmt: skip
    assert 0.0 <= result.results[0].mean <= 1.0


def test_a_classifier_over_an_embedding_starts_empty(photos: Path) -> None:
    embedding = pdfewshot.pretrain(pretrained=str(photos / "imagenet.pdparams"), epochs=0, image_size=32,
                                   out=photos / "m2" / "e.pdparams", show_progress=False)  # fmt: skip
    classifier = embedding.classifier()
    assert classifier.classes == []
    with pytest.raises(PdfewshotError, match="no classes yet"):
        classifier.predict(photos / "photos" / "class0" / "img0.png")
    classifier.add_class("dark", [np.full((16, 16, 3), 5, np.uint8)])
    classifier.add_class("light", [np.full((16, 16, 3), 250, np.uint8)])
    assert classifier.predict([np.full((16, 16, 3), 245, np.uint8)])[0].label == "light"
    classifier.remove_class("dark")
    classifier.remove_class("light")
    assert classifier.classes == []


def test_unknown_options_and_files_are_clear_errors(photos: Path) -> None:
    with pytest.raises(TypeError, match="PretrainConfig has no option 'epoch'"):
        pdfewshot.pretrain(epoch=0)
    with pytest.raises(PdfewshotError, match=r"nothing\.pdparams: no such file"):
        pdfewshot.load(photos / "nothing.pdparams")


@pytest.mark.parametrize("script", ["your_photos.py", "evaluate_folder.py", "teach_and_predict.py"])
def test_the_examples_run_on_tiny_data(photos: Path, script: str, tmp_path: Path) -> None:
    start = str(photos / "imagenet.pdparams")
    folder = str(photos / "photos")
    write_image(tmp_path / "new.png", 81, mode="RGB")
    if script == "your_photos.py":
        args = [folder, str(tmp_path / "new.png"), "--pretrained", start, "--shot", "2", "--out", str(tmp_path / "out")]
    else:
        embedding = tmp_path / "e.pdparams"
        pdfewshot.pretrain(pretrained=start, epochs=0, image_size=32, out=embedding, show_progress=False)
        if script == "evaluate_folder.py":
            args = [str(embedding), folder, "--way", "3", "--shot", "1", "--query", "2", "--episodes", "4"]
        else:
            args = [str(embedding), str(tmp_path / "new.png"), "--teach", f"a={folder}/class0", "--teach",
                    f"b={folder}/class2"]  # fmt: skip
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    expected = {"your_photos.py": "classes: class0, class1, class2", "evaluate_folder.py": "3-way 1-shot prototype",
                "teach_and_predict.py": "taught b from 4 images"}[script]  # fmt: skip
    assert expected in done.stdout, done.stdout
