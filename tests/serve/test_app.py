"""The HTTP API of `pdfewshot serve`, through FastAPI's test client."""

import hashlib
import io
import threading
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from pdfewshot.cli import app as cli
from pdfewshot.config import PredictConfig, ServeConfig
from pdfewshot.serve.app import create_app
from pdfewshot.serve.service import ClassifierService, served_predictor
from pdfewshot.stages.predict import predict
from pdfewshot.storage.checkpoint import read_checkpoint
from pdfewshot.storage.metadata import PredictorMeta
from tests.conftest import tiny_predictor, write_image

Files = list[tuple[str, tuple[str, bytes, str]]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_predictor(tmp_path_factory.mktemp("served"))


@pytest.fixture()
def model(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the trained predictor (and its manifest) that the test may change."""
    _, original = trained
    copy = tmp_path / "p.pdparams"
    for path in original.parent.glob("p.*"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    return copy


@pytest.fixture()
def client(model: Path) -> Iterator[TestClient]:
    with TestClient(create_app(ClassifierService(model), ServeConfig(model=model))) as test_client:
        yield test_client


def files_of(*paths: Path) -> Files:
    return [("images", (path.name, path.read_bytes(), "image/png")) for path in paths]


def fingerprint(model: Path) -> str:
    return hashlib.sha256(model.read_bytes()).hexdigest()


def test_health_classes_and_predict_agree_with_the_predict_command(
    client: TestClient, model: Path, trained: tuple[Path, Path]
) -> None:
    data, _ = trained
    _, meta = read_checkpoint(model, PredictorMeta)
    health = client.get("/health").json()
    assert health["classes"] == len(meta.class_names) and health["kind"] == "predictor" and health["can_teach"]
    classes = client.get("/classes").json()
    assert [c["name"] for c in classes] == meta.class_names
    assert all(c["support"] == meta.shot and not c["taught"] and c["examples"] == meta.shot for c in classes)
    thumbnail = client.get(f"/classes/{meta.class_names[0]}/examples/0")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(thumbnail.content)).size[0] <= 96

    images = sorted((data / "alpha0" / "char1").glob("*.png"))[:3]
    response = client.post("/predict?top_k=2&reject_below=suggested", files=files_of(*images))
    assert response.status_code == 200, response.text
    expected, _ = predict(PredictConfig(inputs=images, model=model, top_k=2, reject_below="suggested"))
    served = response.json()
    assert [p["label"] for p in served] == [p.label for p in expected]
    assert [p["image"] for p in served] == [i.name for i in images]
    for got, want in zip(served, expected, strict=True):
        assert [t["class"] for t in got["top"]] == [name for name, _ in want.ranked]
        np.testing.assert_allclose([t["probability"] for t in got["top"]], [p for _, p in want.ranked], atol=1e-5)
        assert got["rejection"]["score"] == want.rejection.score  # type: ignore[union-attr]


def test_teach_adds_a_class_that_a_restarted_server_still_has(client: TestClient, model: Path, tmp_path: Path) -> None:
    bright = []
    for i in range(3):
        bright.append(tmp_path / "mug" / f"{i}.png")
        write_image(bright[-1], 250 - i, size=40)
    response = client.post("/classes/my mug", files=files_of(*bright))
    assert response.status_code == 200, response.text
    assert response.json() == {"class": "my mug", "new": True, "images": 3, "support": 3, "skipped": []}
    assert read_checkpoint(model, PredictorMeta)[1].class_names[-1] == "my mug"
    listed = {c["name"]: c for c in client.get("/classes").json()}
    assert listed["my mug"]["taught"] and listed["my mug"]["support"] == 3 and listed["my mug"]["examples"] == 3
    assert client.get("/classes/my mug/examples/2").status_code == 200
    assert client.post("/predict", files=files_of(bright[0])).json()[0]["label"] == "my mug"

    more = client.post("/classes/my mug", files=files_of(bright[1]))
    assert more.json() == {"class": "my mug", "new": False, "images": 1, "support": 4, "skipped": []}

    restarted = ClassifierService(model)  # as after a kill: only what is on disk
    try:
        assert "my mug" in [c.name for c in restarted.classes()]
        assert {c.name: c.support for c in restarted.classes()}["my mug"] == 4
    finally:
        restarted.close()


def test_removing_classes_down_to_the_last(client: TestClient, model: Path) -> None:
    names = [c["name"] for c in client.get("/classes").json()]
    assert client.delete("/classes/nobody").status_code == 404
    for name in names[:-1]:
        response = client.delete(f"/classes/{name}")
        assert response.status_code == 200 and response.json()["removed"] == name
    before = fingerprint(model)
    last = client.delete(f"/classes/{names[-1]}")
    assert last.status_code == 409 and "only class" in last.json()["error"]
    assert fingerprint(model) == before and read_checkpoint(model, PredictorMeta)[1].class_names == names[-1:]


def test_an_embedding_starts_a_page_with_no_classes_and_the_last_class_can_go(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    """Served an embedding: no classes (predict is a 409 that changes nothing), the first class taught writes
    the predictor beside the embedding, a restart serves it, and removing the last class empties it again."""
    _, predictor = trained
    embedding = tmp_path / "e.pdparams"
    embedding.write_bytes((predictor.parent / "e.pdparams").read_bytes())
    beside = served_predictor(embedding)
    dark = [tmp_path / f"dark{i}.png" for i in range(2)]
    for i, path in enumerate(dark):
        write_image(path, 10 + i, size=16)
    with TestClient(create_app(ClassifierService(embedding), ServeConfig(model=embedding))) as client:
        health = client.get("/health").json()
        assert health["classes"] == 0 and health["embedding"] == str(embedding) and health["image_size"] == 16
        assert client.get("/classes").json() == []
        empty = client.post("/predict", files=files_of(dark[0]))
        assert empty.status_code == 409 and "no classes yet" in empty.json()["error"]
        assert not beside.exists()
        taught = client.post("/classes/dark", files=files_of(*dark))
        assert taught.status_code == 200 and taught.json() == {
            "class": "dark",
            "new": True,
            "images": 2,
            "support": 2,
            "skipped": [],
        }
        assert beside.is_file() and read_checkpoint(beside, PredictorMeta)[1].class_names == ["dark"]
        named = client.post("/predict", files=files_of(dark[1]), params={"reject_below": "none"})
        assert named.json()[0]["label"] == "dark"
        answered = client.post("/predict", files=files_of(dark[1])).json()[0]  # the embedding's pair threshold
        assert answered["rejection"]["threshold"] == client.get("/health").json()["suggested_reject_below"]
    restarted = ClassifierService(embedding)
    try:
        assert [c.name for c in restarted.classes()] == ["dark"]
    finally:
        restarted.close()
    with TestClient(create_app(ClassifierService(embedding), ServeConfig(model=embedding))) as client:
        removed = client.delete("/classes/dark")
        assert removed.status_code == 200 and removed.json() == {"removed": "dark", "classes": 0}
        assert not beside.exists() and not beside.with_suffix(".json").exists()
        assert client.get("/health").json()["classes"] == 0
        assert client.post("/classes/dark again", files=files_of(dark[0])).status_code == 200
    assert embedding.read_bytes() == (predictor.parent / "e.pdparams").read_bytes()  # the embedding is untouched


@pytest.mark.parametrize(
    ("name", "status"),
    [(" ", 400), ("x" * 65, 400), (".hidden", 400), ("a\\b", 400), ("..", None), ("unknown", 400), ("a/b", 400),
     ("%2E%2E%2Fx", 400), ("tab%09name", 400), ("../x", None)],  # None: the client resolves it, any 4xx
)  # fmt: skip
def test_bad_class_names_change_nothing(
    client: TestClient, model: Path, name: str, status: int | None, tmp_path: Path
) -> None:
    write_image(tmp_path / "a.png", 7)
    before = fingerprint(model)
    response = client.post(f"/classes/{name}", files=files_of(tmp_path / "a.png"))
    assert response.status_code == status if status else 400 <= response.status_code < 500, response.text
    assert response.json()["error"], response.text
    assert fingerprint(model) == before and not (tmp_path / "p.taught").exists()


def test_bad_uploads_and_options_get_one_line_json_errors(client: TestClient, model: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "good.png", 9)
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (15000, 15000), 128).save(tmp_path / "huge.png", compress_level=1)  # 1 MB, 225 Mpx
    good = files_of(tmp_path / "good.png")
    before = fingerprint(model)
    cases = [
        (client.post("/predict", files=files_of(tmp_path / "notes.png")), 400, "notes.png: not an image"),
        (client.post("/predict", files=[("images", ("empty.png", b"", "image/png"))]), 400, "empty.png: empty file"),
        (client.post("/predict"), 422, "images"),
        (client.post("/predict?top_k=0", files=good), 422, "top_k 0: Input should be greater than or equal to 1"),
        (client.post("/predict?reject_below=banana", files=good), 400, "reject_below banana"),
        (client.post("/predict?reject_below=0.5&reject_score=x", files=good), 400, "reject_score x: unknown"),
        (client.post("/predict", files=files_of(*[tmp_path / "good.png"] * 17)), 413, "17 files, at most 16"),
        (client.post("/classes/new", files=files_of(tmp_path / "good.png", tmp_path / "notes.png")), 400,
         "notes.png: not an image"),
        (client.post("/predict", files=files_of(tmp_path / "huge.png")), 413, "huge.png: too large: 15000x15000"),
        (client.post("/classes/new", files=files_of(tmp_path / "huge.png")), 413, "huge.png: too large"),
        (client.get("/classes/nobody/examples/0"), 404, "no such class"),
        (client.get("/nowhere"), 404, "Not Found"),
    ]  # fmt: skip
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"} and words in response.json()["error"], response.text
        assert "\n" not in response.json()["error"]
    assert fingerprint(model) == before and not (tmp_path / "p.taught" / "new").exists()


def test_upload_size_limit_and_token(model: Path, tmp_path: Path) -> None:
    write_image(tmp_path / "big.png", 3, size=400)
    config = ServeConfig(model=model, token="s3cret", max_upload_mb=0.0001)
    with TestClient(create_app(ClassifierService(model), config)) as client:
        too_big = client.post("/predict", files=files_of(tmp_path / "big.png"))
        assert too_big.status_code == 413 and "limit of 0.0001 MB" in too_big.json()["error"]
    write_image(tmp_path / "small.png", 3, size=8)
    config = ServeConfig(model=model, token="s3cret")
    before = fingerprint(model)
    with TestClient(create_app(ClassifierService(model), config)) as client:
        assert client.post("/predict", files=files_of(tmp_path / "small.png")).status_code == 200  # no token needed
        assert client.post("/classes/x", files=files_of(tmp_path / "small.png")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.post("/classes/x", files=files_of(tmp_path / "small.png"), headers=wrong).status_code == 403
        first = read_checkpoint(model, PredictorMeta)[1].class_names[0]
        assert client.delete(f"/classes/{first}", headers=wrong).status_code == 403
        assert fingerprint(model) == before
        right = {"Authorization": "Bearer s3cret"}
        assert client.post("/classes/x", files=files_of(tmp_path / "small.png"), headers=right).status_code == 200
        assert client.get("/download/predictor").status_code == 401
        assert client.get("/download/predictor", headers=right).status_code == 200


def test_the_classifier_as_taught_can_be_downloaded_and_used(client: TestClient, tmp_path: Path) -> None:
    """The checkpoint and the export zip carry the class taught on the page; predict reads both."""
    from pdfewshot.stages.predict import predict

    dark = [tmp_path / f"dark{i}.png" for i in range(3)]
    for i, path in enumerate(dark):
        write_image(path, 200 + i, size=16)
    assert client.post("/classes/dark", files=files_of(*dark[:2])).status_code == 200
    got = client.get("/download/predictor")
    assert got.status_code == 200 and got.headers["content-disposition"] == 'attachment; filename="p.pdparams"'
    (tmp_path / "got" / "p.pdparams").parent.mkdir()
    (tmp_path / "got" / "p.pdparams").write_bytes(got.content)
    zipped = client.get("/download/export")
    assert zipped.status_code == 200 and "p-export.zip" in zipped.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        archive.extractall(tmp_path / "got")
    for model in (tmp_path / "got" / "p.pdparams", tmp_path / "got" / "p-export"):
        results, _ = predict(PredictConfig(inputs=[dark[2]], model=model, reject_below="none", top_k=9))
        assert "dark" in [name for name, _ in results[0].ranked]
    assert client.get("/download/weights").status_code == 404


def test_concurrent_teaching_keeps_every_class_and_predictions_see_whole_classifiers(
    client: TestClient, model: Path, tmp_path: Path
) -> None:
    classes_before = len(client.get("/classes").json())
    names = [f"taught{i}" for i in range(4)]
    for i, name in enumerate(names):
        write_image(tmp_path / name / "0.png", 30 * i + 5, size=20)
    write_image(tmp_path / "query.png", 77)

    def teach(name: str) -> int:
        return int(client.post(f"/classes/{name}", files=files_of(tmp_path / name / "0.png")).status_code)

    def classify(_: int) -> list[float]:
        top = client.post("/predict?top_k=100", files=files_of(tmp_path / "query.png")).json()[0]["top"]
        return [t["probability"] for t in top]

    with ThreadPoolExecutor(8) as pool:
        taught = pool.map(teach, names)
        seen = pool.map(classify, range(12))
        assert list(taught) == [200] * 4
        for probabilities in seen:  # a whole classifier: one of the versions, its probabilities summing to 1
            assert classes_before <= len(probabilities) <= classes_before + 4
            assert abs(sum(probabilities) - 1) < 1e-4
    assert set(names) <= set(read_checkpoint(model, PredictorMeta)[1].class_names)


def test_waiting_predictions_are_scored_in_one_pass(model: Path, tmp_path: Path) -> None:
    service = ClassifierService(model)
    try:
        write_image(tmp_path / "q.png", 11)
        upload = files_of(tmp_path / "q.png")
        release = threading.Event()
        blocker = threading.Thread(target=service._call, args=(release.wait,))  # holds the worker
        blocker.start()
        with TestClient(create_app(service, ServeConfig(model=model))) as client, ThreadPoolExecutor(8) as pool:
            answers = [pool.submit(client.post, "/predict", files=upload) for _ in range(8)]
            deadline = time.monotonic() + 60
            while service._jobs.qsize() < 8 and time.monotonic() < deadline:
                threading.Event().wait(0.01)
            release.set()
            assert service._jobs.qsize() >= 8, "the requests did not all wait"
            assert all(answer.result().status_code == 200 for answer in answers)
            assert service.batches[-1] == 8
        blocker.join()
    finally:
        service.close()


def test_a_change_by_another_process_is_served(client: TestClient, model: Path, trained: tuple[Path, Path]) -> None:
    data, _ = trained
    assert "from the cli" not in [c["name"] for c in client.get("/classes").json()]
    added = CliRunner().invoke(
        cli, ["support", "add", "from the cli", str(data / "alpha0" / "char2"), "--model", str(model)]
    )
    assert added.exit_code == 0, added.output
    assert "from the cli" in [c["name"] for c in client.get("/classes").json()]


def test_an_export_folder_predicts_but_cannot_be_taught(model: Path, tmp_path: Path) -> None:
    exported = CliRunner().invoke(cli, ["export", "--model", str(model), "--out", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    write_image(tmp_path / "q.png", 11)
    folder = tmp_path / "export"
    with TestClient(create_app(ClassifierService(folder), ServeConfig(model=folder))) as client:
        assert client.get("/health").json()["kind"] == "export"
        assert client.post("/predict", files=files_of(tmp_path / "q.png")).status_code == 200
        refused = client.post("/classes/x", files=files_of(tmp_path / "q.png"))
        assert refused.status_code == 409 and "can only predict" in refused.json()["error"]


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<title>pdfewshot</title>" in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing loaded from elsewhere
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "pdfewshot"
    docs = client.get("/docs")  # the API's reference, from this server alone
    assert docs.status_code == 200 and "<code>POST /predict</code>" in docs.text and "reject_below" in docs.text
    assert "http" not in docs.text.replace("http-equiv", "")
