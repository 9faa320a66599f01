"""report.html as a reader sees it: rendered by headless Chromium (Debian package `chromium`),
every figure must load and show something. Skipped, with the install command, where
Chromium is absent."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from scaling import analyze_study, write_report
from scaling.synthetic import PAPER_BUDGETS, synthetic_study

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium"
                                        if Path("/usr/bin/chromium").exists() else None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

# Runs after every image has loaded (or failed to): for each <img>, whether it decoded, its
# natural size and how many distinct colours a sparse sample of its pixels has (a blank figure
# has one). The result is appended to the page as JSON, which --dump-dom prints.
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const found = [];
  for (const img of document.images) {
    const item = {alt: img.alt.slice(0, 60), complete: img.complete, width: img.naturalWidth,
                  height: img.naturalHeight, colours: 0};
    try {
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      const context = canvas.getContext("2d");
      context.drawImage(img, 0, 0);
      const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
      const colours = new Set();
      for (let i = 0; i < pixels.length && colours.size < 50; i += 4 * 97) {
        colours.add(pixels[i] * 65536 + pixels[i + 1] * 256 + pixels[i + 2]);
      }
      item.colours = colours.size;
    } catch (error) { item.error = String(error); }
    found.push(item);
  }
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a throwaway profile and no network use (the machine has none)."""
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120)


def images_as_rendered(html: Path, tmp_path: Path) -> list[dict]:
    """Load a copy of `html` (same folder, so relative links hold) with IMAGE_CHECK added."""
    checked = html.with_name(f"checked-{html.name}")
    checked.write_text(html.read_text(encoding="utf-8").replace("</body>", IMAGE_CHECK + "</body>"),
                       encoding="utf-8")
    # virtual time lets the load event fire before the DOM is dumped
    done = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", checked.as_uri())
    found = re.search(r'<pre id="image-check">(.*?)</pre>', done.stdout, re.DOTALL)
    assert found, f"chromium printed no image check (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def broken_or_blank(images: list[dict]) -> list[dict]:
    return [image for image in images
            if not image["complete"] or image["width"] == 0 or image.get("error")
            or image["colours"] < 3]


@pytest.fixture(scope="module")
def small_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two budgets without bootstrap: every figure kind with fitted laws, quickly."""
    table, _ = synthetic_study(noise=0.0005, budgets=PAPER_BUDGETS[:2], max_members=3,
                               with_eval=False, with_distill=False)
    out = tmp_path_factory.mktemp("report")
    write_report(analyze_study(table, n_boot=0), out)
    return out


def test_every_figure_of_the_report_loads_and_is_not_blank(small_report, tmp_path) -> None:
    images = images_as_rendered(small_report / "report.html", tmp_path)
    pngs = list((small_report / "figures").glob("*.png"))
    assert len(images) == len(pngs) >= 5
    assert not broken_or_blank(images), broken_or_blank(images)
    assert all(image["width"] >= 600 and image["height"] >= 400 for image in images)


def test_the_page_screenshot_is_not_blank(small_report, tmp_path) -> None:
    from PIL import Image

    shot = tmp_path / "report.png"
    done = chromium(tmp_path, "--hide-scrollbars", "--window-size=1280,2400",
                    f"--screenshot={shot}", (small_report / "report.html").as_uri())
    assert shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 50  # text, tables and figures, not one colour


def test_the_check_catches_a_broken_and_a_blank_image(tmp_path) -> None:
    """The check itself: a corrupt PNG and an all-white one must both be reported."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), "white").save(buffer, format="PNG")
    blank = base64.b64encode(buffer.getvalue()).decode("ascii")
    page = tmp_path / "page.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="broken" '
                    'src="data:image/png;base64,iVBORw0KGgoAAAAN">'
                    f'<img alt="blank" src="data:image/png;base64,{blank}"></body></html>')
    images = images_as_rendered(page, tmp_path)
    assert [image["alt"] for image in broken_or_blank(images)] == ["broken", "blank"]
