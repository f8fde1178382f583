"""Huge images: a large JPEG is decoded reduced, anything else too large is refused before it is decoded, and
memory stays bounded (each measured in a child process of its own, by its peak resident memory)."""

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from pdfewshot.data.decoding import (
    MAX_PIXELS,
    WORKING_SIDE,
    ImageTooLarge,
    decode_image,
    decoded_scale,
    why_skipped,
)

DECODE = """
import sys
from pdfewshot.data.decoding import decode_image
try:
    image = decode_image(open(sys.argv[1], "rb").read())
    print(image.size[0], image.size[1])
except ValueError as error:
    print("refused", error)
peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
print(int(peak) // 1024)
"""


def decoded_in_a_child(path: Path) -> tuple[str, int]:
    """What decoding ``path`` gives in a fresh process, and that process's peak memory in MB."""
    done = subprocess.run([sys.executable, "-c", DECODE, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer, peak = done.stdout.strip().splitlines()
    return answer, int(peak)


@pytest.fixture(scope="module")
def huge(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("huge")
    Image.new("L", (20000, 20000), 128).save(folder / "huge.jpg", quality=50)  # 400 million pixels
    Image.new("L", (15000, 15000), 128).save(folder / "huge.png", compress_level=1)  # 225 million
    return {"jpg": folder / "huge.jpg", "png": folder / "huge.png"}


def test_a_huge_jpeg_is_decoded_reduced_in_bounded_memory(huge: dict[str, Path]) -> None:
    answer, peak = decoded_in_a_child(huge["jpg"])
    assert answer == f"{WORKING_SIDE} {WORKING_SIDE}"
    assert peak < 300, f"{peak} MB"  # 1.2 GB as RGB decoded whole


def test_a_huge_png_is_refused_before_it_is_decoded(huge: dict[str, Path]) -> None:
    answer, peak = decoded_in_a_child(huge["png"])
    assert answer.startswith("refused 15000x15000 pixels, more than pdfewshot decodes (67 million for PNG)")
    assert peak < 300, f"{peak} MB"
    with pytest.raises(ImageTooLarge) as raised:
        decode_image(huge["png"].read_bytes())
    assert why_skipped(raised.value).startswith("too large: 15000x15000 pixels")


def test_an_image_larger_than_the_working_side_is_shrunk_and_a_small_one_kept(tmp_path: Path) -> None:
    Image.new("RGB", (3000, 1000), (10, 20, 30)).save(tmp_path / "wide.png")
    Image.new("RGB", (300, 200), (10, 20, 30)).save(tmp_path / "small.png")
    wide = decode_image((tmp_path / "wide.png").read_bytes())
    assert wide.size == (WORKING_SIDE, 683) and decoded_scale(wide) == (3000 / WORKING_SIDE, 1000 / 683)
    small = decode_image((tmp_path / "small.png").read_bytes())
    assert small.size == (300, 200) and decoded_scale(small) == (1.0, 1.0)
    assert MAX_PIXELS == 8192 * 8192
