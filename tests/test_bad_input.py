"""Bad input, table-driven, through the CLI: each case must end with one line 'error: ...' that names
the file or option and what is wrong, exit code 2, no traceback, and no output file created or changed."""

import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdfewshot.cli import app
from pdfewshot.reporting.console import LossProgress
from pdfewshot.train.resume import resume_path
from tests.conftest import make_flat, make_nested, write_image

runner = CliRunner()


@dataclass(frozen=True)
class World:
    """Files the cases point at: data folders, checkpoints, and an output folder to watch."""

    root: Path
    data: Path  # 3 alphabets x 3 characters x 6 images
    embedding: Path  # resnet18, 16 px, 8-d, trained on `data`
    conv4: Path  # conv4 embedding of the same data
    predictor: Path
    out: Path  # where cases write; must not change

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {
            str(p.relative_to(self.root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(self.root.rglob("*"))
            if p.is_file()
        }


def invoke(args: list[str]) -> tuple[int, str]:
    result = runner.invoke(app, args)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("bad")
    data = make_nested(root / "data", alphabets=3, characters=3, per_class=6)
    models = root / "models"
    common = ["--image-size", "16", "--embedding-dim", "8", "--epochs", "1", "--steps-per-epoch", "1",
              "--batch-size", "4", "--novel-fraction", "0.34", "--data", str(data)]  # fmt: skip
    for backbone in ("resnet18", "conv4"):
        code, output = invoke(
            ["pretrain", *common, "--backbone", backbone, "--out", str(models / f"{backbone}.pdparams")]
        )
        assert code == 0, output
    code, output = invoke(["finetune", "--model", str(models / "resnet18.pdparams"), "--shot", "2", "--steps", "1",
                           "--out", str(models / "predictor.pdparams")])  # fmt: skip
    assert code == 0, output
    out = root / "out"
    out.mkdir()
    (out / "keep.pdparams").write_bytes(b"previous")
    return World(
        root, data, models / "resnet18.pdparams", models / "conv4.pdparams", models / "predictor.pdparams", out
    )


def folder_with(world: World, name: str, make: Callable[[Path], None]) -> Path:
    folder = world.root / "cases" / name
    if not folder.exists():
        make_flat(folder, classes=3, per_class=4)
        make(folder)
    return folder


def strict_case(kind: str) -> Callable[[World], list[str]]:
    def args(world: World) -> list[str]:
        def spoil(folder: Path) -> None:
            target = folder / "class1" / "bad.png"
            if kind == "empty":
                target.write_bytes(b"")
            elif kind == "text":
                target.write_text("this is not a picture")
            else:
                good = (folder / "class1" / "img0.png").read_bytes()
                target.write_bytes(good[: len(good) // 2])

        folder = folder_with(world, f"strict-{kind}", spoil)
        return ["pretrain", "--strict", "--data", str(folder), "--out", str(world.out / "m.pdparams")]

    return args


FACE_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "face-api" / "model"


def face_weights_case(kind: str) -> Callable[[World], list[str]]:
    """``pretrain --pretrained FOLDER`` with face-api's files spoiled: another network's manifest under the
    descriptor's name, the descriptor's binary missing, or cut short."""

    def args(world: World) -> list[str]:
        if not FACE_WEIGHTS.is_dir():
            pytest.skip("needs ../shared/weights/face-api")
        folder = world.root / "cases" / f"faces-{kind}"
        if not folder.exists():
            folder.mkdir(parents=True)
            for file in FACE_WEIGHTS.iterdir():
                (folder / file.name).symlink_to(file)
            descriptor = folder / "face_recognition_model.bin"
            manifest = folder / "face_recognition_model-weights_manifest.json"
            if kind == "other":
                manifest.unlink()
                text = (FACE_WEIGHTS / "face_landmark_68_model-weights_manifest.json").read_text()
                manifest.write_text(text.replace("face_landmark_68_model.bin", "face_recognition_model.bin"))
            descriptor.unlink()
            if kind == "short":
                descriptor.write_bytes((FACE_WEIGHTS / "face_recognition_model.bin").read_bytes()[:1000])
            elif kind == "other":
                descriptor.symlink_to(FACE_WEIGHTS / "face_landmark_68_model.bin")
        return ["pretrain", "--pretrained", str(folder), "--epochs", "0", "--out", str(world.out / "m.pdparams")]

    return args


def empty_folder(world: World) -> Path:
    folder = world.root / "cases" / "void"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def resume_with_other(option: str, value: str) -> Callable[[World], list[str]]:
    return lambda world: [*resumable_run(world), option, value, "--resume"]


def resumable_run(world: World) -> list[str]:
    """The arguments of a run (16 px, 8-d) that saved its state after step 1 and was interrupted."""
    out = world.root / "resumable" / "m.pdparams"
    args = ["pretrain", "--data", str(world.data), "--image-size", "16", "--embedding-dim", "8",
            "--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "4", "--out", str(out)]  # fmt: skip

    if not resume_path(out).exists():
        original = LossProgress.update

        def stop(self: LossProgress, value: float, advance: int = 1) -> None:
            raise KeyboardInterrupt

        LossProgress.update = stop  # type: ignore[method-assign]
        try:
            code, output = invoke([*args, "--save-every", "1"])
        finally:
            LossProgress.update = original  # type: ignore[method-assign]
        assert code == 130 and resume_path(out).exists(), output
    return args


def imagenet_start(world: World) -> list[str]:
    """Options of a run from an ImageNet-shaped MobileNetV2 state dict (random weights)."""
    import paddle
    from paddle.vision.models import mobilenet_v2

    path = world.root / "cases" / "mobilenet-v2-shaped.pdparams"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        paddle.save(mobilenet_v2().state_dict(), str(path))
    return ["--data", str(world.data), "--pretrained", str(path), "--image-size", "32"]


def torch_file(world: World, kind: str) -> list[str]:
    """A PyTorch weights file as --pretrained: another network's, one whose pickle would run a command (the
    marker file it would touch is checked by the test of the reader), or one cut short."""
    import os
    import pickle

    import numpy as np

    from tests.nets.pth import write_legacy

    folder = world.root / "cases" / "pth"
    folder.mkdir(parents=True, exist_ok=True)
    other = {"conv1.weight": np.zeros((4, 3, 3, 3), np.float32), "fc.weight": np.zeros((2, 4), np.float32)}
    if kind == "other":
        path = write_legacy(folder / "resnet.pth", other)
    elif kind == "hostile":

        class RunsACommand:
            def __reduce__(self) -> tuple[object, tuple[str]]:
                return os.system, (f"touch {folder / 'ran'}",)

        path = folder / "hostile.pth"
        path.write_bytes(pickle.dumps(RunsACommand(), protocol=2))
    else:
        whole = write_legacy(folder / "whole.pth", other).read_bytes()
        path = folder / "cut.pth"
        path.write_bytes(whole[: len(whole) - 20])
    return ["pretrain", "--pretrained", str(path), "--epochs", "0", "--out", str(world.out / "m.pdparams")]


def ten_way_classifier(world: World) -> list[str]:
    """A paddle.vision ResNet18 state dict with a 10-way classifier: not an ImageNet start."""
    import paddle
    from paddle.vision.models import resnet18

    path = world.root / "cases" / "ten-way.pdparams"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        paddle.save(resnet18(num_classes=10).state_dict(), str(path))
    return ["pretrain", "--pretrained", str(path), "--epochs", "0", "--out", str(world.out / "m.pdparams")]


def embedding_of_no_data(world: World) -> list[str]:
    """`finetune` without --data of an embedding that `pretrain --epochs 0` made without data."""
    import paddle
    from paddle.vision.models import resnet18

    weights, embedding = world.root / "cases" / "imagenet-shaped.pdparams", world.root / "cases" / "start.pdparams"
    weights.parent.mkdir(parents=True, exist_ok=True)
    if not embedding.exists():
        paddle.save(resnet18().state_dict(), str(weights))
        code, output = invoke(["pretrain", "--pretrained", str(weights), "--epochs", "0", "--image-size", "16",
                               "--out", str(embedding)])  # fmt: skip
        assert code == 0, output
    return ["finetune", "--model", str(embedding), "--out", str(world.out / "p.pdparams")]


def not_a_zip(world: World) -> list[str]:
    path = world.root / "cases" / "fake.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("PK? no")
    return ["pretrain", "--data", str(path), "--out", str(world.out / "m.pdparams")]


def zip_without_images(world: World) -> list[str]:
    path = world.root / "cases" / "docs.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "no images here")
    return ["pretrain", "--data", str(path), "--out", str(world.out / "m.pdparams")]


def zip_of_loose_drawings(world: World) -> list[str]:
    """Drawings at the top of a zip, in no character folders."""
    path = world.root / "cases" / "loose.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(4):
            archive.writestr(f"drawing{i}.png", next(world.data.rglob("*.png")).read_bytes())
    return ["pretrain", "--data", str(path), "--out", str(world.out / "m.pdparams")]


def runs_missing_a_file(world: World) -> list[str]:
    from tests.data.test_omniglot_runs import make_runs_zip

    whole = make_runs_zip(world.root / "cases" / "whole_runs.zip", runs=2, classes=3)
    path = world.root / "cases" / "all_runs.zip"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as archive:
        for name in source.namelist():
            if name != "run02/test/item03.png":
                archive.writestr(name, source.read(name))
    return ["evaluate", "--runs", str(path), "--method", "nn-pixels", "--report", str(world.out / "r.json")]


def class_of_one_drawing(world: World) -> list[str]:
    folder = world.root / "cases" / "lonely"
    if not folder.exists():
        make_flat(folder, classes=3, per_class=4)
        for extra in ("img1.png", "img2.png", "img3.png"):
            (folder / "class2" / extra).unlink()
    return ["pretrain", "--data", str(folder), "--out", str(world.out / "m.pdparams"), "--epochs", "1"]


def pipeline(text: str) -> Callable[[World], list[str]]:
    def args(world: World) -> list[str]:
        path = world.root / "cases" / f"p{abs(hash(text))}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return ["run", str(path)]

    return args


def other_data_for_predictor(world: World) -> list[str]:
    folder = folder_with(world, "other-classes", lambda folder: None)
    return ["test", "--model", str(world.predictor), "--data", str(folder), "--report", str(world.out / "r.json")]


def embedding_without_novel_classes(world: World) -> list[str]:
    out = world.root / "cases" / "all-base.pdparams"
    if not out.exists():
        code, output = invoke(["pretrain", "--data", str(world.data), "--out", str(out), "--image-size", "16",
                               "--embedding-dim", "8", "--epochs", "1", "--warmup-epochs", "0",
                               "--steps-per-epoch", "1", "--batch-size", "4", "--novel-fraction", "0"])  # fmt: skip
        assert code == 0, output
    return ["finetune", "--model", str(out), "--out", str(world.out / "p.pdparams")]


def no_threshold_stored(world: World) -> list[str]:
    """A 1-shot predictor of the energy score: no image to leave out, and no pair threshold for energy."""
    out = world.root / "cases" / "energy.pdparams"
    if not out.exists():
        code, output = invoke(["finetune", "--model", str(world.embedding), "--shot", "1", "--steps", "1",
                               "--reject-score", "energy", "--out", str(out)])  # fmt: skip
        assert code == 0, output
    image = str(world.data / "alpha0" / "char0" / "0.png")
    return ["predict", image, "--model", str(out), "--reject-below", "suggested"]


def huge_image(folder: Path) -> Path:
    """A 15000 x 15000 PNG (1 MB, 225 million pixels: Pillow's own check would raise a decompression bomb)."""
    from PIL import Image

    path = folder / "huge.png"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (15000, 15000), 128).save(path, compress_level=1)
    return path


def huge_image_strict(world: World) -> list[str]:
    return ["predict", str(huge_image(world.root / "cases" / "huge")), "--model", str(world.predictor), "--strict"]


CASES: list[tuple[str, Callable[[World], list[str]], str]] = [
    ("missing path", lambda w: ["pretrain", "--data", str(w.root / "nowhere")],
     "--data {root}/nowhere: no such file or folder"),
    ("empty folder", lambda w: ["pretrain", "--data", str(empty_folder(w))], "void: no images found in class folders"),
    ("folder without images", lambda w: ["pretrain", "--data", str(w.root / "models")],
     "no images found in class folders"),
    ("class folder without images",
     lambda w: ["pretrain", "--data", str(folder_with(w, "hollow", lambda f: (f / "class9").mkdir()))],
     "class folder class9 has no images"),
    ("a folder of one person", lambda w: ["pretrain", "--data", str(make_flat(w.root / "cases" / "one", classes=1))],
     "--data has 1 class (class0): learning to tell classes apart needs images of at least 2"),
    ("non-image file under --strict", strict_case("text"), "class1/bad.png: unreadable image"),
    ("empty image under --strict", strict_case("empty"), "class1/bad.png: unreadable image"),
    ("truncated image under --strict", strict_case("truncated"), "class1/bad.png: unreadable image"),
    ("fewer images than shot + 1", lambda w: ["finetune", "--model", str(w.embedding), "--shot", "6",
                                              "--out", str(w.out / "p.pdparams")], "--shot 6 needs at least 7"),
    ("way above the novel classes", lambda w: ["finetune", "--model", str(w.embedding), "--way", "4",
                                               "--out", str(w.out / "p.pdparams")], "--way 4: only 3 novel classes"),
    ("shot 0", lambda w: ["finetune", "--model", str(w.embedding), "--shot", "0"], "--shot 0: must be at least 1"),
    ("negative shot", lambda w: ["finetune", "--model", str(w.embedding), "--shot", "-2"],
     "--shot -2: must be at least 1"),
    ("image size too small", lambda w: ["pretrain", "--image-size", "4"], "--image-size 4: must be between 8 and 512"),
    ("image size too large", lambda w: ["pretrain", "--image-size", "4096"], "--image-size 4096: must be between"),
    ("unknown learning-rate schedule", lambda w: ["pretrain", "--data", str(w.data), "--lr-schedule", "linear",
                                                  "--out", str(w.out / "m.pdparams")], "--lr-schedule linear: unknown"),
    ("checkpoint of another backbone",
     lambda w: ["pretrain", "--data", str(w.data), "--pretrained", str(w.conv4), "--image-size", "16",
                "--backbone", "resnet18", "--out", str(w.out / "m.pdparams")],
     "backbone is 'conv4', expected 'resnet18'"),
    ("resume with another embedding size", resume_with_other("--embedding-dim", "16"),
     "saved with embedding_dim = 8, this run has 16"),
    ("resume with another image size", resume_with_other("--image-size", "20"),
     "saved with image_size = 16, this run has 20"),
    ("predictor given as embedding", lambda w: ["finetune", "--model", str(w.predictor)],
     "is a predictor checkpoint, expected a embedding checkpoint"),
    ("embedding given as predictor", lambda w: ["test", "--model", str(w.embedding)],
     "is a embedding checkpoint, expected a predictor checkpoint"),
    ("predictor classes not in the data", other_data_for_predictor, "classes are not in the data"),
    ("output under a file", lambda w: ["finetune", "--model", str(w.embedding), "--out",
                                       str(w.out / "keep.pdparams" / "p.pdparams")], "cannot write there"),
    ("output not .pdparams", lambda w: ["finetune", "--model", str(w.embedding), "--out", str(w.out / "p.bin")],
     "must end in .pdparams"),
    ("embedding that holds out no classes", embedding_without_novel_classes,
     "--model: the embedding holds out no classes (pretrained with --novel-fraction 0, the default for your own "
     "data); give --data"),
    ("zip that is not a zip", not_a_zip, "fake.zip: not a zip archive"),
    ("reject rate outside (0, 1)", lambda w: ["finetune", "--model", str(w.embedding), "--reject-rate", "0",
                                              "--out", str(w.out / "p.pdparams")],
     "--reject-rate 0.0: must be above 0 and below 1"),
    ("unknown reject score", lambda w: ["finetune", "--model", str(w.embedding), "--reject-score", "vibes",
                                        "--out", str(w.out / "p.pdparams")],
     "--reject-score vibes: unknown, choose from max-cosine, energy, max-softmax"),
    ("time budget of 0", lambda w: ["pretrain", "--data", str(w.data), "--time-budget", "0",
                                    "--out", str(w.out / "m.pdparams")], "--time-budget 0: must be longer than 0"),
    ("time budget that is not a duration", lambda w: ["pretrain", "--data", str(w.data), "--time-budget", "banana",
                                                      "--out", str(w.out / "m.pdparams")],
     "--time-budget banana: not a duration (such as 90s, 15m or 1h30m)"),
    ("patience 0", lambda w: ["pretrain", "--data", str(w.data), "--patience", "0",
                              "--out", str(w.out / "m.pdparams")], "--patience 0: must be at least 1"),
    ("validation leaving too few classes",
     lambda w: ["pretrain", "--data", str(folder_with(w, "three", lambda f: None)), "--validation-fraction", "0.2",
                "--image-size", "16", "--out", str(w.out / "m.pdparams")],
     "--validation-fraction 0.2: the data has 3 base classes; validation needs 4 of them and training 2 more"),
    ("imagenet weights for another backbone",
     lambda w: ["pretrain", "--data", str(w.data), "--pretrained", "imagenet", "--backbone", "conv4",
                "--out", str(w.out / "m.pdparams")],
     "--pretrained imagenet: there are ImageNet weights for resnet18, resnet50, vgg16, mobilenet_v2, "
     "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, not conv4"),
    ("pth of another network", lambda w: torch_file(w, "other"),
     "resnet.pth: not efficientnet_lite0's weights (conv1.weight is not one of its tensors)"),
    ("pth that would run a command", lambda w: torch_file(w, "hostile"),
     "hostile.pth: refused, it would call posix.system (a weights file needs only tensors); nothing in it was run"),
    ("cut-short pth", lambda w: torch_file(w, "cut"), "cut.pth: cut short"),
    ("no training without start weights", lambda w: ["pretrain", "--epochs", "0", "--out", str(w.out / "m.pdparams")],
     "--epochs 0: no training keeps the start weights as they are, so it needs --pretrained"),
    ("negative epochs", lambda w: ["pretrain", "--pretrained", "imagenet", "--epochs", "-1",
                                   "--out", str(w.out / "m.pdparams")], "--epochs -1: must not be negative"),
    ("state dict that is no ImageNet classifier", ten_way_classifier,
     "ten-way.pdparams: not an ImageNet classifier of the resnet18 backbone: fc.weight has shape [512, 10], not "
     "[512, 1000]"),
    ("embedding of no data without --data", embedding_of_no_data,
     "--model: made from no data (pretrain --epochs 0); give --data with the classes to use"),
    ("backbone readout of a frozen backbone",
     lambda w: ["pretrain", "--data", str(w.data), "--readout", "backbone", "--freeze-backbone",
                "--out", str(w.out / "m.pdparams")],
     "--readout backbone: the backbone is frozen (--freeze-backbone)"),
    ("unknown readout", lambda w: ["pretrain", "--data", str(w.data), "--readout", "middle",
                                   "--out", str(w.out / "m.pdparams")],
     "--readout middle: unknown, choose from backbone, centred, projection"),
    ("a stage the backbone does not have",
     lambda w: ["pretrain", *imagenet_start(w), "--freeze-to", "layer9", "--out", str(w.out / "m.pdparams")],
     "--freeze-to layer9: not a stage of mobilenet_v2 to freeze to; its stages are stem, block1, block2, block3, "
     "block4, block5, block6, block7 (the last, above them, always trains)"),
    ("a stage of a backbone without stages",
     lambda w: ["pretrain", "--data", str(w.data), "--backbone", "conv4", "--image-size", "16", "--freeze-to",
                "block1", "--out", str(w.out / "m.pdparams")],
     "--freeze-to block1: not a stage of conv4 to freeze to; it has none"),
    ("frozen stages with distortions",
     lambda w: ["pretrain", *imagenet_start(w), "--augment", "photo", "--out", str(w.out / "m.pdparams")],
     "--augment photo: the frozen stages are computed once for undistorted images"),
    ("a frozen stage and a frozen backbone",
     lambda w: ["pretrain", *imagenet_start(w), "--freeze-to", "block2", "--freeze-backbone",
                "--out", str(w.out / "m.pdparams")],
     "--freeze-to block2: --freeze-backbone freezes every stage already"),
    ("LP-FT without a start", lambda w: ["pretrain", "--data", str(w.data), "--image-size", "16", "--pretrained",
                                         "none", "--probe-epochs", "3", "--out", str(w.out / "m.pdparams")],
     "--probe-epochs 3: LP-FT's probe and L2-SP keep a start, so they need --pretrained"),
    ("L2-SP without a start", lambda w: ["pretrain", "--data", str(w.data), "--image-size", "16", "--l2-sp", "0.01",
                                         "--out", str(w.out / "m.pdparams")],
     "--l2-sp 0.01: LP-FT's probe and L2-SP keep a start, so they need --pretrained"),
    ("a centred readout of no data", lambda w: ["pretrain", "--pretrained", imagenet_start(w)[3], "--epochs", "0",
                                                "--readout", "centred", "--out", str(w.out / "m.pdparams")],
     "--readout centred: the readout subtracts the base images' mean feature; give --data"),
    ("zip without images", zip_without_images, "docs.zip: no images found"),
    ("zip of drawings in no character folders", zip_of_loose_drawings, "loose.zip: no images found in class folders"),
    ("runs zip missing a file", runs_missing_a_file,
     "--runs {root}/cases/all_runs.zip: run02/test/item03.png is named in class_labels.txt but missing"),
    ("class of one drawing", class_of_one_drawing,
     "--data class class2 has 1 image; training needs at least 2 of each class: add images, or leave that folder out"),
    ("runs file that is not a zip", lambda w: ["evaluate", "--runs", str(w.data / "alpha0" / "char0" / "0.png"),
                                              "--report", str(w.out / "e.json")], "0.png: not a zip archive"),
    ("unknown method", lambda w: ["evaluate", "--model", str(w.embedding), "--method", "guess"], "--method guess"),
    ("negative views", lambda w: ["evaluate", "--model", str(w.embedding), "--views", "-1"],
     "--views -1: must be 0 or more"),
    ("pipeline with an unknown key", pipeline('title = "x"\n[[stage]]\ncommand = "test"\n'), "unknown key 'title'"),
    ("pipeline with an unknown option", pipeline('[[stage]]\ncommand = "finetune"\nshots = 2\n'),
     "stage 1 (finetune): No such option: --shots"),
    ("pipeline with a wrong type", pipeline('[[stage]]\ncommand = "finetune"\nshot = "two"\n'),
     "stage 1 (finetune): Invalid value for '--shot'"),
    ("pipeline that is not TOML", pipeline("[[stage]\n"), "not valid TOML"),
    ("face weights of another network", face_weights_case("other"),
     "--pretrained {root}/cases/faces-other/face_recognition_model-weights_manifest.json: tensor "
     "conv32_down/conv/filters is missing"),
    ("face weights without their binary", face_weights_case("missing"),
     "its weights file {root}/cases/faces-missing/face_recognition_model.bin is missing"),
    ("face weights cut short", face_weights_case("short"), "face_recognition_model.bin holds 1000 bytes"),
    ("finetune before any pretrain", lambda w: ["finetune", "--shot", "1"],
     "--model models/emb_model.pdparams: no such checkpoint file; no embedding has been made there yet: run "
     "'pdfewshot pretrain' first"),
    ("predict before any finetune", lambda w: ["predict", str(w.data / "alpha0" / "char0" / "0.png")],
     "no predictor has been made there yet: run 'pdfewshot finetune' (or 'pdfewshot support add') first"),
    ("a folder that holds no weights", lambda w: ["pretrain", "--pretrained", str(w.data), "--epochs", "0",
                                                  "--out", str(w.out / "m.pdparams")],
     "a folder, where a weights file (.pdparams) or face-api's weights folder"),
    ("a folder of one class to finetune on",
     lambda w: ["finetune", "--model", str(w.embedding), "--data", str(make_flat(w.root / "cases" / "solo", classes=1)),
                "--shot", "1", "--out", str(w.out / "p.pdparams")],
     "--data: one class (class0); a classifier needs two or more. Add a folder for another class, or teach the "
     "others later with 'pdfewshot support add' or the page of 'pdfewshot serve'"),
    ("the stored threshold of a predictor with none", no_threshold_stored,
     "stores no threshold (a pair-bce predictor, a single class, or one image a class with --reject-score energy); "
     "give --reject-below a number"),
    ("a huge image under --strict", huge_image_strict, "huge.png: too large: 15000x15000 pixels, more than pdfewshot "
     "decodes (67 million for PNG); shrink it first"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "make_args", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(world: World, case: str, make_args: Callable[[World], list[str]], message: str,
                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    args = make_args(world)
    monkeypatch.chdir(world.out)  # default outputs (models/...) would land here and be seen
    before = world.snapshot()
    code, output = invoke(args)
    assert code == 2, output
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, output
    assert message.format(root=world.root) in errors[0]
    assert world.snapshot() == before, "an output file was created or changed"


def test_unreadable_images_are_skipped_with_a_warning_without_strict(world: World) -> None:
    folder = world.root / "cases" / "strict-text"
    if not folder.exists():
        strict_case("text")(world)
    write_image(folder / "class2" / "fine.png", 7)
    out = world.root / "w" / "m.pdparams"
    code, output = invoke(["pretrain", "--data", str(folder), "--image-size", "16", "--epochs", "1",
                           "--steps-per-epoch", "1", "--batch-size", "2", "--out", str(out)])  # fmt: skip
    assert code == 0, output
    assert "warning: skipped 1 unreadable images (first: " in output and "class1/bad.png" in output


def test_a_huge_image_in_a_class_is_skipped_with_one_line(world: World) -> None:
    folder = world.root / "cases" / "with-huge"
    if not folder.exists():
        make_flat(folder, classes=2, per_class=3)
    huge = huge_image(folder / "class1")
    out = world.root / "w" / "huge.pdparams"
    code, output = invoke(["finetune", "--model", str(world.embedding), "--data", str(folder), "--shot", "1",
                           "--steps", "1", "--out", str(out)])  # fmt: skip
    assert code == 0 and "Traceback" not in output, output
    assert f"(first: {huge}: too large: 15000x15000 pixels" in output
