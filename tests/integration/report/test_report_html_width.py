"""report.html at phone (390 px) and desktop (1280 px) width, laid out by headless Chromium.

The page must never be wider than the viewport: wide tables scroll inside their own
box. Chromium will not make a window narrower than 500 px, so the report is loaded
in an iframe of the exact width; the wrapper page reads the frame's scrollWidth
(file:// frames are same-origin with --allow-file-access-from-files). Chromium comes
from Debian (tests/tools/system-deps.sh); without it these tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "report"))
from report_factory import build

from audit.report import ReportInputs, render

STUDY = Path(__file__).resolve().parents[2] / "fixtures" / "study"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (tests/tools/system-deps.sh installs it)"
)
# Nothing leaves the machine: no updater, sync, or other background traffic.
QUIET = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--no-default-browser-check", "--hide-scrollbars",
    "--allow-file-access-from-files",
]  # fmt: skip

WRAPPER = """<!DOCTYPE html><html><body style="margin:0">
<iframe id="f" src="report.html" style="width:{width}px;height:900px;border:0"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {{
  var root = this.contentDocument.documentElement;
  document.title = JSON.stringify({{viewport: this.contentWindow.innerWidth,
                                    page: root.scrollWidth}});
}});
</script></body></html>
"""


def _chromium(profile: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(CHROMIUM), *QUIET, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _long_names_report() -> ReportInputs:
    analysis, results = build(
        components=["no-velocity-features-for-card-present", "device_graph_embeddings_v2"],
        primary="recall_at_one_percent_false_positive_rate",
        failed=3,
        reason="RuntimeError: CUDA out of memory while allocating tensor of shape 4096x4096",
    )
    return ReportInputs(analysis, results)


REPORTS = {
    "passing": lambda: ReportInputs(
        json.loads((STUDY / "passing" / "analysis.json").read_text()),
        json.loads((STUDY / "passing" / "results.json").read_text()),
    ),
    "long-names": _long_names_report,
}


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("name", sorted(REPORTS))
def test_report_is_never_wider_than_the_viewport(tmp_path: Path, name: str, width: int):
    (tmp_path / "report.html").write_text(render(REPORTS[name](), "html"), encoding="utf-8")
    wrapper = tmp_path / "wrapper.html"
    wrapper.write_text(WRAPPER.format(width=width), encoding="utf-8")
    window = f"--window-size={max(width, 500) + 20},940"
    dom = _chromium(
        tmp_path / "profile", window, "--virtual-time-budget=10000", "--dump-dom",
        wrapper.as_uri(),
    )  # fmt: skip
    title = re.search(r"<title>(.*?)</title>", dom, flags=re.S)
    assert title, "the wrapper never saw the report load"
    measured = json.loads(title.group(1).replace("&quot;", '"'))
    assert measured["viewport"] == width
    assert measured["page"] <= measured["viewport"], measured
    shot = tmp_path / f"report-{width}.png"  # kept in tmp_path for a human to look at
    _chromium(tmp_path / "profile", window, f"--screenshot={shot}", wrapper.as_uri())
    assert _png_size(shot)[0] == max(width, 500) + 20


def test_names_break_only_at_separators():
    page = render(_long_names_report(), "html")
    assert (
        "<code>no-<wbr>no-<wbr>velocity-<wbr>features-<wbr>for-<wbr>card-<wbr>present</code>"
        in page
    )
    assert "break-all" not in page
