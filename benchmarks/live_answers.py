"""The page's live answers, as the browser test measures them: answers a second by the page's own counter and
the share naming the class on screen, on photographs and on faces (docs/results.md, The page's live answers).

    PDFEWSHOT_AXE=node_modules/axe-core/axe.min.js python benchmarks/live_answers.py

Runs the two camera tests of tests/serve/test_browser.py (headless Chromium with a fake camera playing videos
made from caltech101_dev and lfw_dev photographs) and prints the lines they print. Needs chromium,
chromium-driver, ../shared and axe-core (the photo test checks the page with it).
"""

import subprocess
import sys
from pathlib import Path

from pdfewshot.runtime import cpu_info, thread_count


def main() -> None:
    print(f"{cpu_info().get('model name', 'unknown CPU')}, {thread_count()} threads")
    test = Path(__file__).parents[1] / "tests" / "serve" / "test_browser.py"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", str(test), "-k", "recorded_from_the_camera"],
                          capture_output=True, text=True)  # fmt: skip
    for line in done.stdout.splitlines():
        if line.lstrip(".F").startswith(("photos:", "faces:")) or "passed" in line or "failed" in line:
            print(line.lstrip(".F"))
    sys.exit(done.returncode)


if __name__ == "__main__":
    main()
