"""Faces framed as users frame them, made with Pillow from lfw_dev's 250x250 portraits (issue #35's table):

- ``lfw``: unchanged;
- ``tight``: ``crop((70, 62, 180, 196))`` resized to 92x112, greyscale (the face fills the frame: classic face
  data sets, ID and badge photos, webcam close-ups);
- ``turned25`` / ``turned45``: turned by +-25 / +-45 degrees in the image plane (alternating), grey fill;
- ``small56`` / ``small40``: the tight crop (in colour) resized to a face 56 / 40 px wide, pasted at a seeded
  place into a plain 640x480 scene;
- ``group``: four people's tight crops at 56 px in one 640x480 scene (a group photo; one file per photo,
  named by its people, for counting faces rather than for episodes);
- ``corners``: the 60x60 top-left and top-right corner of each portrait (background only: no face should be
  found there).

``write_framing(source, out, framing, seed)`` writes the variant of every image of the class folders in
``source`` into ``out/<class>/``, keeping the file names (PNG), and returns ``out``.
"""

import random
from pathlib import Path

from PIL import Image

TIGHT_BOX = (70, 62, 180, 196)
TIGHT_SIZE = (92, 112)
SCENE = (640, 480)
SCENE_COLOUR = (128, 128, 128)
FRAMINGS = ("lfw", "tight", "turned25", "turned45", "small56", "small40", "group", "corners")


def tight(image: Image.Image) -> Image.Image:
    return image.crop(TIGHT_BOX).resize(TIGHT_SIZE, Image.Resampling.BILINEAR).convert("L")


def turned(image: Image.Image, degrees: float) -> Image.Image:
    return image.rotate(degrees, Image.Resampling.BILINEAR, fillcolor=SCENE_COLOUR)


def face_of_width(image: Image.Image, width: int) -> Image.Image:
    height = round(width * TIGHT_SIZE[1] / TIGHT_SIZE[0])
    return image.crop(TIGHT_BOX).resize((width, height), Image.Resampling.BILINEAR)


def small(image: Image.Image, width: int, rng: random.Random) -> Image.Image:
    face = face_of_width(image, width)
    scene = Image.new("RGB", SCENE, SCENE_COLOUR)
    scene.paste(face, (rng.randrange(SCENE[0] - face.width), rng.randrange(SCENE[1] - face.height)))
    return scene


def group(faces: list[Image.Image], width: int, rng: random.Random) -> Image.Image:
    """The faces side by side in a row at a seeded height, with seeded gaps (each face ``width`` px wide)."""
    scene = Image.new("RGB", SCENE, SCENE_COLOUR)
    slot = SCENE[0] // len(faces)
    for index, image in enumerate(faces):
        face = face_of_width(image, width)
        x = index * slot + rng.randrange(max(1, slot - face.width))
        scene.paste(face, (x, rng.randrange(SCENE[1] - face.height)))
    return scene


def corners(image: Image.Image) -> list[Image.Image]:
    width = image.width
    return [image.crop((0, 0, 60, 60)), image.crop((width - 60, 0, width, 60))]


def write_framing(source: Path, out: Path, framing: str, seed: int = 0) -> Path:
    rng = random.Random(seed)
    files = sorted(path for path in source.glob("*/*") if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if framing == "group":
        return _write_groups(files, out, rng)
    for index, path in enumerate(files):
        folder = out / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        image = Image.open(path).convert("RGB")
        made = _framed(image, framing, index, rng)
        for number, picture in enumerate(made):
            suffix = f"_{number}" if len(made) > 1 else ""
            picture.save(folder / f"{path.stem}{suffix}.png")
    return out


def _framed(image: Image.Image, framing: str, index: int, rng: random.Random) -> list[Image.Image]:
    sign = 1 if index % 2 == 0 else -1
    if framing == "lfw":
        return [image]
    if framing == "tight":
        return [tight(image)]
    if framing.startswith("turned"):
        return [turned(image, sign * float(framing.removeprefix("turned")))]
    if framing.startswith("small"):
        return [small(image, int(framing.removeprefix("small")), rng)]
    if framing == "corners":
        return corners(image)
    raise ValueError(f"unknown framing {framing!r}: one of {', '.join(FRAMINGS)}")


def _write_groups(files: list[Path], out: Path, rng: random.Random, people: int = 4) -> Path:
    """Photos of ``people`` different people each (the first image of each person, in seeded groups)."""
    firsts = {path.parent.name: path for path in reversed(files)}
    names = sorted(firsts)
    rng.shuffle(names)
    folder = out / "groups"
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(names) - people + 1, people):
        chosen = names[start : start + people]
        picture = group([Image.open(firsts[name]).convert("RGB") for name in chosen], 56, rng)
        picture.save(folder / f"{'+'.join(chosen)}.png")
    return out
