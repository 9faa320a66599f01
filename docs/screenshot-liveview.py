"""Screenshot the live sweep view of a study while it runs, as ``dcsl sweep status --watch``
draws it on a terminal (docs/watching.md shows the result).

Start a sweep (``dcsl demo --quick``, say), then from another shell:

    .venv/bin/python docs/screenshot-liveview.py demo-quick docs/liveview.png [--running 2]

It polls the study's runs (the same reader and renderable as ``status --watch``) until at
least ``--running`` runs are running, one has reported a step and ``--stages`` stages have
runs, records that view with
rich into an SVG, and renders the SVG to PNG with headless Chromium (Debian package
``chromium``), as docs/screenshot-report.sh does for the report.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from sweeps.cli import study_path
from sweeps.execution.liveview import LiveProgress, rich_view
from sweeps.execution.runfacts import study_runs
from sweeps.runs import read_index
from sweeps.study import load_study


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("study", help="a study file or a packaged study's name (demo-quick)")
    ap.add_argument("png", type=Path)
    ap.add_argument("--root", default=None)
    ap.add_argument("--running", type=int, default=2, help="wait for this many running runs")
    ap.add_argument("--stages", type=int, default=1, help="... and runs of this many stages planned")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--width", type=int, default=104, help="terminal columns")
    args = ap.parse_args()

    study = load_study(study_path(args.study), root=args.root)
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        index = read_index(study.root)
        if index is not None:
            display = LiveProgress(f"study {study.name}", lambda: study_runs(study.root),
                                   study.executor.workers(len(index.runs)), log=lambda _: None,
                                   live=False, study=study, vocab=index.pinned.get("vocab"))
            view = display.view()
            if (len(view.running) >= args.running and any(r.facts.step for r in view.running)
                    and len(view.stages) >= args.stages):
                break
        time.sleep(1.0)
    else:
        print(f"no view with {args.running} running runs in {args.timeout:.0f}s", file=sys.stderr)
        return 1
    console = Console(record=True, width=args.width, force_terminal=True, color_system="truecolor",
                      file=open("/dev/null", "w"))  # noqa: SIM115 - rich keeps the file
    console.print(rich_view(view, f"study {study.name}"))
    with tempfile.TemporaryDirectory() as tmp:
        svg = console.export_svg(title=f"dcsl sweep status {args.study} --watch")
        # rich sizes the SVG by its viewBox; shown at its natural size, the window fits it.
        width, height = (float(v) for v in svg.split('viewBox="', 1)[1].split('"', 1)[0].split()[2:])
        page = Path(tmp) / "liveview.html"
        page.write_text(f'<html><body style="margin:0;background:#fff">'
                        f'<div style="width:{width:.0f}px;height:{height:.0f}px">{svg}</div></body></html>')
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp}/profile",
                        f"--window-size={width:.0f},{height:.0f}", "--force-device-scale-factor=1.5",
                        f"--screenshot={args.png.resolve()}", f"file://{page}"],
                       check=True, capture_output=True)
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
