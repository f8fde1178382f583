"""The typed records stages hand each other: written and read back whole, and checked when read."""

import json
from dataclasses import replace

import pytest

from pdfewshot.errors import PdfewshotError
from pdfewshot.storage.metadata import (
    EmbeddingMeta,
    ImageRef,
    QueryManifest,
    Split,
    TrainingRecord,
    from_json,
    to_json,
)


def embedding_meta() -> EmbeddingMeta:
    return EmbeddingMeta(
        backbone="conv4", image_size=28, channels=1, embedding_dim=64, class_names=["a", "b"], data=["/d"],
        split=Split(base=("a", "b"), novel=("c",), unit="class", validation=("v",)), seed=0, loss="ce",
        warmup_epochs=0, config={"lr": 0.001}, training=TrainingRecord(10, 1, 0.5, 1.5, best_validation=0.8,
                                                                       best_step=6),
    )  # fmt: skip


def test_a_record_survives_json_whole() -> None:
    meta = embedding_meta()
    assert from_json(EmbeddingMeta, json.loads(json.dumps(to_json(meta)))) == meta


def test_checkpoints_written_before_validation_and_normalisation_still_read() -> None:
    data = to_json(embedding_meta())
    del data["normalisation"], data["split"]["validation"], data["training"]["best_step"], data["readout"]
    meta = from_json(EmbeddingMeta, data)
    assert meta.normalisation == "symmetric" and meta.split.validation == () and meta.training.best_step is None
    assert meta.readout == "projection"  # the embedding was the projection head's output then


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("backbone"), "field 'backbone' is missing"),
        (lambda d: d.update(image_size="28"), "field 'image_size': expected int, found str"),
        (lambda d: d.update(class_names="ab"), "field 'class_names': expected a list"),
        (lambda d: d["split"].update(novel=["a"]), "split parts share classes"),
        (lambda d: d.update(readout="middle"), "readout 'middle' is not one of backbone, centred, projection"),
    ],
)
def test_a_damaged_record_is_a_one_line_error(change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = to_json(embedding_meta())
    change(data)
    with pytest.raises(PdfewshotError, match=message) as error:
        from_json(EmbeddingMeta, data, "m.pdparams")
    assert "\n" not in str(error.value) and str(error.value).startswith("m.pdparams")


def test_the_query_manifest_keeps_its_json_layout() -> None:
    manifest = QueryManifest(["a"], [ImageRef("a/1.png", "a")], [ImageRef("a/2.png", "a")])
    data = manifest.to_json()
    assert data["queries"] == [{"key": "a/2.png", "class": "a"}]
    assert QueryManifest.from_json(data, "q.json") == manifest
    with pytest.raises(PdfewshotError, match=r"q\.json: 'support' must list"):
        QueryManifest.from_json({**data, "support": [{"key": 1}]}, "q.json")
    assert replace(manifest, classes=["b"]).classes == ["b"]
