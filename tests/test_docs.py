"""The documentation builds with warnings as errors (what `make docs` runs)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="docs extra not installed: pip install -e '.[docs]'")
    build = tmp_path / "html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            "-q",
            str(ROOT / "docs"),
            str(build),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    index = (build / "index.html").read_text()
    assert "groove" in index.lower()
    api_pages = list((build / "generated").glob("*.html"))
    names = {p.stem for p in api_pages}
    for public in (
        "groove_sc.model.GROOVE",
        "groove_sc.tl.align",
        "groove_sc.pl.latent",
        "groove_sc.module.group_clip_loss",
        "groove_sc.datasets.simulate",
    ):
        assert public in names, sorted(names)[:20]
    for notebook in ("01_quickstart", "02_real_data", "03_perturbation_screen"):
        assert (build / "tutorials" / f"{notebook}.html").exists()
    shutil.rmtree(build)
