"""rating.html in a real headless Chromium: rate, export, aggregate.

Needs Debian's `chromium` and `chromium-driver` (`make test` installs them);
without them this test fails and says so, rather than skipping.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import stats

from jaxstyle import images as image_io
from jaxstyle.evaluate import gallery

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABELS = ["U-Net (ours)", "Johnson TransformerNet", "Gatys NST"]
STEMS = ["amber", "street"]


def _report(out_dir):
  """A report as jaxstyle.evaluate writes it, with real (small) PNGs."""
  rng = np.random.default_rng(0)
  os.makedirs(os.path.join(out_dir, "images"))
  def png(name):
    image_io.save_png(rng.uniform(size=(24, 24, 3)), os.path.join(out_dir, "images", name))
    return "images/" + name
  rows = []
  for i, label in enumerate(LABELS):
    per = {s: dict(image=png(f"{s}__{i}.png"), ssim=0.5, psnr=20.0,
                   style_similarity=0.9, content_distance=0.4) for s in STEMS}
    rows.append(dict(key=str(i), label=label, kind="checkpoint", status="ok", per_image=per))
  rows.append(dict(key="m", label="CycleGAN", kind="checkpoint", status="missing",
                   reason="no checkpoint"))
  return {"conditions": {"date": "test", "summary": "test"}, "rows": rows,
          "content_images": [{"stem": s, "image": png(f"content_{s}.png")} for s in STEMS],
          "style": {"name": "mosaic", "image": png("style.png")}}


def _driver(download_dir):
  chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
  if not chromium or not driver_path:
    pytest.fail("headless Chromium is needed for this test: `apt-get install -y chromium "
                "chromium-driver` (make test-deps does it on Debian)")
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
    options.add_argument(arg)
  options.add_experimental_option("prefs", {
      "download.default_directory": download_dir, "download.prompt_for_download": False})
  driver = webdriver.Chrome(service=Service(driver_path), options=options)
  driver.execute_cdp_cmd("Page.setDownloadBehavior",
                         {"behavior": "allow", "downloadPath": download_dir})
  return driver


def _score(image, code, criterion):
  """The score the test gives: deterministic, different per model and criterion."""
  return 1 + (ord(code) * 3 + len(image) + ["quality", "style", "detail"].index(criterion)) % 5


def test_rate_export_and_aggregate(tmp_path):
  out = str(tmp_path / "eval")
  codes = gallery.write_pages(out, _report(out), seed=0)
  assert sorted(codes.values()) == sorted(LABELS)  # the missing row is not rated
  page = open(os.path.join(out, "rating.html")).read()
  for label in LABELS:  # blind: no model name in the page
    assert label not in page
  downloads = str(tmp_path / "downloads")
  os.makedirs(downloads)
  driver = _driver(downloads)
  try:
    driver.get("file://" + os.path.join(out, "rating.html"))
    driver.find_element("id", "rater").send_keys("Ada Lovelace")
    driver.find_element("id", "start").click()
    radios = driver.find_elements("css selector", "input[type=radio]")
    assert len(radios) == len(STEMS) * len(LABELS) * 3 * 5
    # Every image loads from file:// (relative paths).
    assert driver.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth === 24)")
    expected = {}
    for radio in radios:
      image, code, crit = (radio.get_attribute(f"data-{k}") for k in ("image", "code", "criterion"))
      want = _score(image, code, crit)
      if int(radio.get_attribute("value")) == want:
        driver.find_element("css selector", f"label[for='{radio.get_attribute('id')}']").click()
        expected[(image, code, crit)] = want
    assert driver.find_element("id", "progress").text == f"{len(expected)} / {len(expected)} rated"
    # Progress survives a reload (localStorage).
    driver.refresh()
    checked = driver.find_elements("css selector", "input[type=radio]:checked")
    assert len(checked) == len(expected)
    driver.find_element("id", "export").click()
    path = os.path.join(downloads, "ratings_Ada_Lovelace.csv")
    deadline = time.time() + 20
    while not os.path.exists(path) and time.time() < deadline:
      time.sleep(0.1)
    assert os.path.exists(path), os.listdir(downloads)
  finally:
    driver.quit()

  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["rater", "image", "model_code", "criterion", "score"]
  got = {(r["image"], r["model_code"], r["criterion"]): int(r["score"]) for r in rows}
  assert got == expected and {r["rater"] for r in rows} == {"Ada Lovelace"}

  # A second rater, scoring everything one point higher (capped at 5).
  second = str(tmp_path / "bob.csv")
  with open(second, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["rater", "image", "model_code", "criterion", "score"])
    for (image, code, crit), s in sorted(expected.items()):
      writer.writerow(["Bob", image, code, crit, min(5, s + 1)])
  proc = subprocess.run([sys.executable, "-m", "jaxstyle.evaluate", "--ratings", path, second,
                         "--out", out], cwd=REPO, capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=REPO), timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(out, "table1.json")) as f:
    block = json.load(f)["ratings"]
  assert block["raters"] == ["Ada Lovelace", "Bob"]
  for code, label in codes.items():
    for crit in ("quality", "style", "detail"):
      a = np.mean([expected[(s, code, crit)] for s in STEMS])
      b = np.mean([min(5, expected[(s, code, crit)] + 1) for s in STEMS])
      means = np.array([a, b])
      agg = block["models"][label][crit]
      assert agg["mean"] == pytest.approx(means.mean(), abs=1e-12)
      # t-interval over the 2 rater means: mean ± t(0.975, 1) · s / √2.
      half = stats.t.ppf(0.975, 1) * means.std(ddof=1) / np.sqrt(2)
      assert agg["ci_low"] == pytest.approx(means.mean() - half, abs=1e-9)
      assert agg["ci_high"] == pytest.approx(means.mean() + half, abs=1e-9)
  md = open(os.path.join(out, "table1.md")).read()
  assert "Human ratings" in md and "Ada Lovelace" in md
