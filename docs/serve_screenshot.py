"""Makes the README's picture of the `pdfewshot serve` page: a real server, a real (headless) Chromium.

    python docs/serve_screenshot.py MODEL OUT.png --classify A.jpg B.jpg --teach NAME X.jpg Y.jpg Z.jpg \
        [--teach NAME2 ...] --then-classify C.jpg D.jpg [--first FIRST.png]

Starts `pdfewshot serve --model MODEL` on a free local port (a predictor, or an embedding: a page that
starts with no classes), saves the page as it opens (--first), classifies the --classify images on the
page, teaches each --teach class from its images, classifies the --then-classify images, and saves a
screenshot of the whole page. It changes MODEL (it teaches it): give it a copy. Needs chromium and
chromium-driver (Debian's packages) and the serve and dev extras.
"""

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--classify", type=Path, nargs="*", default=[])
    parser.add_argument("--teach", nargs="+", action="append", required=True, help="NAME IMAGE [IMAGE ...]")
    parser.add_argument("--first", type=Path, help="Also save the page as it first opens here.")
    parser.add_argument("--then-classify", type=Path, nargs="*", default=[])
    parser.add_argument("--width", type=int, default=1000)
    args = parser.parse_args()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pdfewshot = Path(sys.executable).with_name("pdfewshot")
    server = subprocess.Popen([str(pdfewshot), "serve", "--model", str(args.model), "--port", str(port)])
    address = f"http://127.0.0.1:{port}"
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={args.width},900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = WebDriverWait(driver, 120)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(address + "/health", timeout=5).close()
                break
            except OSError:
                time.sleep(0.2)
        driver.get(address)
        wait.until(lambda d: d.find_element(By.ID, "model").text != "loading…")

        def save(out: Path) -> None:
            time.sleep(1)  # thumbnails
            for _ in range(3):  # the page reflows as the window grows
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(args.width, height + 150)
                time.sleep(0.5)
            driver.save_screenshot(str(out))
            print(f"wrote {out}")

        if args.first:
            save(args.first)

        def classify(images: list[Path]) -> None:
            before = len(driver.find_elements(By.CSS_SELECTOR, "#results li"))
            for image in images:
                driver.find_element(By.ID, "classify-input").send_keys(str(image.resolve()))
                before += 1
                wait.until(lambda d, n=before: len(d.find_elements(By.CSS_SELECTOR, "#results li")) == n)

        classify(args.classify)
        for name, *teach_images in args.teach:
            driver.find_element(By.ID, "teach-name").send_keys(name)
            driver.find_element(By.ID, "teach-input").send_keys("\n".join(str(Path(p).resolve()) for p in teach_images))
            driver.find_element(By.ID, "teach-button").click()
            wait.until(lambda d, row=f'#classes li[data-name="{name}"] img': d.find_elements(By.CSS_SELECTOR, row))
        classify(args.then_classify)
        save(args.out)
    finally:
        driver.quit()
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
