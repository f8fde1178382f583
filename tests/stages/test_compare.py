"""`pdfewshot compare` and `pdfewshot evaluate --pairs`: pair verification by an embedding."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.storage.checkpoint import read_checkpoint
from pdfewshot.storage.metadata import EmbeddingMeta
from tests.conftest import make_nested, tiny_pretrain

runner = CliRunner()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Data, an embedding with validation classes and one without (its threshold from its novel classes)."""
    root = tmp_path_factory.mktemp("compare")
    data = make_nested(root / "data", alphabets=3, characters=4, per_class=6)
    validated, plain = root / "validated.pdparams", root / "plain.pdparams"
    for out, extra in ((validated, ["--validation-fraction", "0.3"]), (plain, [])):
        result = runner.invoke(app, tiny_pretrain(data, out, 2, *extra))
        assert result.exit_code == 0, result.output
    return data, validated, plain


def test_pretrain_with_validation_classes_stores_a_pair_threshold(embedded: tuple[Path, Path, Path]) -> None:
    _, validated, _ = embedded
    _, meta = read_checkpoint(validated, EmbeddingMeta)
    assert meta.verification is not None and meta.verification.similarity == "cosine"
    assert "validation classes (pretrain)" in meta.verification.chosen_on and 0.5 <= meta.verification.accuracy <= 1
    assert not meta.verification.optimistic


def test_pretrain_without_validation_classes_chooses_a_threshold_on_its_novel_classes(
    embedded: tuple[Path, Path, Path],
) -> None:
    _, _, plain = embedded
    _, meta = read_checkpoint(plain, EmbeddingMeta)
    # 4 novel classes of 6 images: 60 same-class pairs, so 120 pairs; evaluate --pairs scores these classes
    assert meta.verification is not None and meta.verification.optimistic
    assert meta.verification.chosen_on.startswith("120 pairs of images of 4 classes held out as novel (pretrain")
    assert 0.5 <= meta.verification.accuracy <= 1


def test_pretrain_without_validation_or_novel_classes_chooses_a_threshold_on_held_out_base_images(
    embedded: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, _, _ = embedded
    out = tmp_path / "all_base.pdparams"
    result = runner.invoke(app, tiny_pretrain(data, out, 2, "--novel-fraction", "0", "--validation-fraction", "0"))
    assert result.exit_code == 0, result.output
    _, meta = read_checkpoint(out, EmbeddingMeta)
    assert meta.verification is not None and meta.verification.optimistic
    # 12 base classes of 6 images: 2 of each held out, one same-class pair each, so 24 pairs
    assert meta.verification.chosen_on.startswith("24 pairs of images of 12 base classes held out from the training")
    assert "optimistic" in meta.verification.chosen_on and 0.5 <= meta.verification.accuracy <= 1


def test_compare_images_at_the_stored_threshold(embedded: tuple[Path, Path, Path]) -> None:
    data, validated, _ = embedded
    a = data / "alpha0" / "char0" / "0.png"
    others = [a, data / "alpha0" / "char0" / "1.png", data / "alpha2" / "char3" / "2.png"]
    result = runner.invoke(app, ["compare", str(a), *map(str, others), "--model", str(validated), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    _, meta = read_checkpoint(validated, EmbeddingMeta)
    assert report["threshold"] == meta.verification.threshold  # type: ignore[union-attr]
    assert report["threshold_from"].startswith("chosen on") and report["similarity"] == "cosine"
    assert [row["second"] for row in report["pairs"]] == list(map(str, others))
    assert report["pairs"][0]["similarity"] == pytest.approx(1.0, abs=1e-5) and report["pairs"][0]["same"]
    table = runner.invoke(app, ["compare", str(a), str(others[2]), "--model", str(validated), "--threshold", "2"])
    assert table.exit_code == 0 and "different" in table.output and "same at >= 2.0000 (given)" in table.output


def test_a_pairs_file_with_labels_reports_accuracy_and_names_a_bad_line(
    embedded: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    data, validated, _ = embedded
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "first,second,label\n"
        f"{data}/alpha0/char0/0.png,{data}/alpha0/char0/1.png,same\n"
        "# a comment\n"
        f"{data}/alpha0/char0/0.png,{data}/alpha1/char2/1.png,different\n"
    )
    result = runner.invoke(app, ["compare", "--pairs", str(pairs), "--model", str(validated)])
    assert result.exit_code == 0, result.output
    assert "accuracy: " in result.output and "(2 labelled pairs)" in result.output
    pairs.write_text(f"{data}/alpha0/char0/0.png,{data}/alpha0/char0/1.png\n{data}/alpha0/char0/0.png,nowhere.png\n")
    result = runner.invoke(app, ["compare", "--pairs", str(pairs), "--model", str(validated)])
    assert (
        result.exit_code == 2 and f"{pairs}: line 2: " in result.output and "nowhere.png: no such file" in result.output
    )
    pairs.write_text(f"{data}/alpha0/char0/0.png,{data}/alpha0/char0/1.png,maybe\n")
    result = runner.invoke(app, ["compare", "--pairs", str(pairs), "--model", str(validated)])
    assert result.exit_code == 2 and "line 1: 'maybe': the third field must be same or different" in result.output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["one.png"], "give IMAGE_A and at least one IMAGE_B"),
        (["missing.png", "other.png"], "missing.png: no such file"),
        (["--pairs", "p.csv", "a.png"], "--pairs: give images or --pairs, not both"),
    ],
)
def test_compare_bad_input(embedded: tuple[Path, Path, Path], arguments: list[str], message: str) -> None:
    _, validated, _ = embedded
    result = runner.invoke(app, ["compare", *arguments, "--model", str(validated)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_evaluate_pairs_replaces_an_optimistic_threshold_then_uses_its_own(
    embedded: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, _, plain = embedded
    model = tmp_path / "e.pdparams"
    model.write_bytes(plain.read_bytes())
    command = ["evaluate", "--model", str(model), "--pairs", "40", "--report", str(tmp_path / "r.json"), "--plots"]
    first = runner.invoke(app, command)
    assert first.exit_code == 0, first.output
    assert "stored the threshold in" in first.output and "accuracy measured on the other 20 pairs" in first.output
    stored = read_checkpoint(model, EmbeddingMeta)[1].verification
    assert stored is not None and stored.chosen_on == "20 pairs of 4 classes (evaluate --pairs 40, seed 0)"
    report = json.loads((tmp_path / "r.json").read_text())["pairs"]
    assert report["pairs"] == 40 and 0 <= report["roc_auc"] <= 1 and 0 <= report["eer"] <= 1
    assert report["threshold"] == stored.threshold and report["stored"]
    assert (tmp_path / "r.pairs.roc.png").stat().st_size > 1000
    second = runner.invoke(app, command)
    assert second.exit_code == 0 and "from the checkpoint, chosen on 20 pairs" in second.output
    assert json.loads((tmp_path / "r.json").read_text())["pairs"]["accuracy_measured_on"] == 40
    too_many = runner.invoke(app, ["evaluate", "--model", str(model), "--pairs", "5000"])
    assert too_many.exit_code == 2 and "--pairs 5000: the data gives" in too_many.output
    with_runs = runner.invoke(app, ["evaluate", "--model", str(model), "--pairs", "10", "--open-set"])
    assert with_runs.exit_code == 2 and "not with --runs or --open-set" in with_runs.output
