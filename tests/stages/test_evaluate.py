import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from tests.data.test_omniglot_runs import make_runs_zip
from tests.stages.test_pipeline import pretrain_args

runner = CliRunner()


@pytest.fixture(scope="module")
def embedding(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("evaluate")
    data = root / "glyphs"
    synth = ["data", "synth", str(data), "--alphabets", "6", "--characters", "4", "--drawers", "6"]
    assert runner.invoke(app, synth).exit_code == 0
    assert runner.invoke(app, pretrain_args(data, root)).exit_code == 0
    return root / "emb.pdparams"


def test_methods_and_shots_share_episodes(embedding: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval.json"
    args = ["evaluate", "--model", str(embedding), "--way", "3", "--shot", "1", "--shot", "2", "--query", "2",
            "--episodes", "7", "--finetune-steps", "3", "--report", str(report), "--per-class"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    overall = [line for line in lines if line.startswith("overall: ")]
    assert len(overall) == 6  # 3 methods x 2 shots
    assert "+-" in overall[0] and "(prototype, 3-way 1-shot, 7 episodes)" in overall[0]
    data = json.loads(report.read_text())
    assert {(r["method"], r["shot"]) for r in data["results"]} == {
        (m, s) for m in ("prototype", "finetune", "nn-pixels") for s in (1, 2)
    }
    for item in data["results"]:
        assert item["count"] == 7 and item["trials"] == 7 * 3 * 2
        per_class_total = sum(row["queries"] for row in item["per_class"])
        assert per_class_total == item["trials"]
        # only the 8 novel classes of the embedding's split are drawn
        assert len(item["per_class"]) <= 8

    again = runner.invoke(app, [*args[:-2], str(tmp_path / "again.json")])
    assert again.exit_code == 0
    assert [r["accuracies"] for r in json.loads((tmp_path / "again.json").read_text())["results"]] == [
        r["accuracies"] for r in data["results"]
    ]


def test_runs_without_checkpoint_run_nn_pixels_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no models/emb_model.pdparams here
    runs = make_runs_zip(tmp_path / "runs.zip", runs=2, classes=3)
    result = runner.invoke(app, ["evaluate", "--runs", str(runs), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert "skipped prototype, finetune: no embedding checkpoint" in result.output
    lines = result.output.strip().splitlines()
    # each test image is nearest its own training image, so 1-NN on pixels gets all 6 trials
    assert "overall: 1.0000 +- 0.0000  (nn-pixels, 2 runs, 6 trials)" in lines
    assert lines[-1] == "2 runs: 1.0000"


def test_runs_with_checkpoint(embedding: Path, tmp_path: Path) -> None:
    runs = make_runs_zip(tmp_path / "runs.zip", runs=2, classes=3)
    args = ["evaluate", "--model", str(embedding), "--runs", str(runs), "--method", "prototype",
            "--method", "nn-pixels", "--report", str(tmp_path / "r.json")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["method"] for r in data["results"]] == ["prototype", "nn-pixels"]
    assert data["runs"] == ["run01", "run02"] and data["results"][0]["trials"] == 6


def test_unknown_method_is_a_clear_error(embedding: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", str(embedding), "--method", "magic"])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "error: --method magic: unknown, choose from prototype, finetune, transductive, nn-pixels, pair"
    )
    result = runner.invoke(app, ["evaluate", "--model", str(embedding), "--method", "pair"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --method pair: needs an embedding pretrained with --loss pair-bce"


def test_pair_bce_checkpoints_score_through_their_pair_head(embedding: Path, tmp_path: Path) -> None:
    data = embedding.parent / "glyphs"
    pair_model = tmp_path / "pair.pdparams"
    args = pretrain_args(data, tmp_path)
    args[args.index("--out") + 1] = str(pair_model)
    assert runner.invoke(app, [*args, "--loss", "pair-bce"]).exit_code == 0
    report = tmp_path / "e.json"
    result = runner.invoke(app, ["evaluate", "--model", str(pair_model), "--way", "3", "--query", "2",
                                 "--episodes", "4", "--report", str(report)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r["method"] for r in json.loads(report.read_text())["results"]] == ["pair", "nn-pixels"]
    runs = make_runs_zip(tmp_path / "runs.zip", runs=1, classes=3)
    result = runner.invoke(app, ["evaluate", "--model", str(pair_model), "--runs", str(runs), "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("1 runs: ")
    assert "(pair, 1 runs, 3 trials)" in result.output


def test_views_are_seeded_and_leave_nn_pixels_alone(embedding: Path, tmp_path: Path) -> None:
    runs = make_runs_zip(tmp_path / "runs.zip", runs=2, classes=3)

    def scored(name: str, views: int | None, *extra: str) -> dict[str, list[float]]:
        report = tmp_path / name
        args = ["evaluate", "--model", str(embedding), "--way", "3", "--query", "2", "--episodes", "5",
                "--finetune-steps", "3", "--report", str(report), *extra]  # fmt: skip
        if views is not None:
            args += ["--views", str(views)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        data = json.loads(report.read_text())
        assert data["views"] == (views or 0)  # 0 when not given
        return {r["method"]: r["accuracies"] for r in data["results"]}

    plain, viewed = scored("plain.json", None), scored("viewed.json", 3)
    assert scored("again.json", 3) == viewed
    assert viewed["nn-pixels"] == plain["nn-pixels"]
    assert set(viewed) == {"prototype", "finetune", "nn-pixels"}
    on_runs = scored("runs.json", 2, "--runs", str(runs))
    assert {m: len(a) for m, a in on_runs.items()} == {"prototype": 2, "finetune": 2, "nn-pixels": 2}
    assert on_runs["nn-pixels"] == [1.0, 1.0]


def test_finetune_at_learning_rate_zero_scores_as_the_prototype(embedding: Path, tmp_path: Path) -> None:
    # W starts as the prototypes and b as zero: with nothing learnt, finetune must agree with prototype.
    report = tmp_path / "lr0.json"
    args = ["evaluate", "--model", str(embedding), "--way", "3", "--query", "2", "--episodes", "6",
            "--method", "prototype", "--method", "finetune", "--finetune-lr", "0", "--entropy-weight", "0.5",
            "--views", "1", "--report", str(report)]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    prototype, finetune = (r["accuracies"] for r in json.loads(report.read_text())["results"])
    assert finetune == prototype


def test_open_set_episodes_measure_every_score_on_the_same_episodes(embedding: Path, tmp_path: Path) -> None:
    report = tmp_path / "open.json"
    args = ["evaluate", "--model", str(embedding), "--open-set", "--way", "2", "--unknown-way", "2", "--shot", "1",
            "--shot", "2", "--query", "2", "--episodes", "6", "--finetune-steps", "3", "--method", "prototype",
            "--method", "finetune", "--report", str(report)]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rows = json.loads(report.read_text())["open_set"]
    assert {(r["method"], r["shot"], r["score"]) for r in rows} == {
        (m, s, score) for m in ("prototype", "finetune") for s in (1, 2)
        for score in ("max-softmax", "energy", "max-cosine", "class-distance")
    }  # fmt: skip
    for row in rows:
        assert row["episodes"] == 6 and 0.0 <= row["auroc"]["mean"] <= 1.0
        assert 0.0 <= row["false_accepts_at_95"]["mean"] <= 1.0
        # A threshold comes from leaving support images out: none with one shot.
        assert (row["open_accuracy"] is None) == (row["shot"] == 1)
    by_score = {(r["method"], r["shot"], r["score"]): r for r in rows}
    # Cosine scores read the prototypes, whichever method classifies: the same AUROC for both methods.
    assert by_score[("prototype", 2, "max-cosine")]["auroc"] == by_score[("finetune", 2, "max-cosine")]["auroc"]
    assert runner.invoke(app, args).exit_code == 0
    assert json.loads(report.read_text())["open_set"] == rows  # seeded: the same numbers again


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--unknown-way", "40"],
            "--unknown-way 40: only 6 classes are left after the 2 known ones (with 3 images each)",
        ),
        (["--reject-rate", "1.5"], "--reject-rate 1.5: must be above 0 and below 1"),
        (
            ["--runs", "runs.zip"],
            "--open-set: the 20 runs have no unknown classes; give --data (or none) for open-set episodes",
        ),
    ],
)
def test_open_set_bad_input(embedding: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    args = ["evaluate", "--model", str(embedding), "--open-set", "--way", "2", "--query", "2",
            "--report", str(tmp_path / "r.json"), *extra]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and result.output.strip() == f"error: {message}"
    assert not (tmp_path / "r.json").exists()


def test_episodes_scored_in_groups_give_the_same_accuracies(
    embedding: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raw pixels of large images do not fit in memory for every episode at once: episodes are scored in
    groups under a memory bound, with the same numbers for the methods that fit no weights."""
    args = ["evaluate", "--model", str(embedding), "--way", "3", "--shot", "2", "--query", "2", "--episodes", "9",
            "--method", "prototype", "--method", "nn-pixels"]  # fmt: skip
    whole = runner.invoke(app, [*args, "--report", str(tmp_path / "whole.json")])
    assert whole.exit_code == 0, whole.output
    monkeypatch.setattr("pdfewshot.stages.evaluate.MAX_EPISODE_FEATURE_BYTES", 2 * 6 * 28 * 28 * 4)  # 2 episodes
    grouped = runner.invoke(app, [*args, "--report", str(tmp_path / "grouped.json")])
    assert grouped.exit_code == 0, grouped.output
    accuracies = [[r["accuracies"] for r in json.loads((tmp_path / f"{name}.json").read_text())["results"]]
                  for name in ("whole", "grouped")]  # fmt: skip
    assert accuracies[0] == accuracies[1] and len(accuracies[0][0]) == 9
