import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pdfewshot.data.omniglot_runs import read_runs
from pdfewshot.errors import PdfewshotError


def png(value: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((10, 10), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_runs_zip(path: Path, runs: int = 2, classes: int = 3, wrap: str = "") -> Path:
    """Runs laid out as all_runs.zip: runNN/{training,test}/..., class_labels.txt naming both."""
    with zipfile.ZipFile(path, "w") as archive:
        for r in range(1, runs + 1):
            run = f"run{r:02d}"
            lines = []
            for c in range(1, classes + 1):
                archive.writestr(f"{wrap}{run}/training/class{c:02d}.png", png(20 * c))
                # test item i belongs to class (classes - i + 1): a reversed mapping to read right
                target = classes - c + 1
                archive.writestr(f"{wrap}{run}/test/item{c:02d}.png", png(20 * target + 1))
                lines.append(f"{run}/test/item{c:02d}.png {run}/training/class{target:02d}.png")
            archive.writestr(f"{wrap}{run}/class_labels.txt", "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("wrap", ["", "all_runs/"])
def test_runs_reader_pairs_each_test_image_with_its_training_class(tmp_path: Path, wrap: str) -> None:
    runs = read_runs(make_runs_zip(tmp_path / "runs.zip", wrap=wrap), image_size=8)
    assert [r.name for r in runs] == ["run01", "run02"]
    run = runs[0]
    assert run.training.shape == (3, 8, 8, 1) and run.test.shape == (3, 8, 8, 1)
    np.testing.assert_array_equal(run.test_labels, [2, 1, 0])
    # each test image is one grey level above its training image
    for test_image, label in zip(run.test, run.test_labels, strict=True):
        assert int(test_image.mean()) == int(run.training[label].mean()) + 1


def test_runs_reader_errors(tmp_path: Path) -> None:
    with pytest.raises(PdfewshotError, match="no such file"):
        read_runs(tmp_path / "absent.zip", 8)
    (tmp_path / "bad.zip").write_text("no")
    with pytest.raises(PdfewshotError, match="not a zip archive"):
        read_runs(tmp_path / "bad.zip", 8)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("x.txt", "x")
    with pytest.raises(PdfewshotError, match="no run folders"):
        read_runs(tmp_path / "empty.zip", 8)
