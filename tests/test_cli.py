import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import contextlib
import io

import pytest

from groove_sc.cli import demo, main
from tests._shared import bad_input


def test_demo_runs_end_to_end_and_writes_the_history_figure(tmp_path, capsys):
    code = main(
        [
            "demo",
            "--out",
            str(tmp_path / "out"),
            "--epochs",
            "3",
            "--perturbations",
            "5",
            "--cells-per-perturbation",
            "40",
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "label transfer (1-NN)" in printed and "latent FOSCTTM" in printed
    figure = tmp_path / "out" / "history.png"
    assert figure.exists() and figure.stat().st_size > 10_000


def test_demo_report_values_are_in_range(tmp_path):
    report = demo(
        tmp_path, n_perturbations=4, cells_per_perturbation=30, max_epochs=2, progress_bar=False
    )
    assert 0.0 <= report["label_transfer"] <= 1.0
    assert 0.0 <= report["latent_foscttm"] <= 1.0
    assert report["training_seconds"] > 0


def test_console_help_lists_demo():
    out = subprocess.run(
        [sys.executable, "-m", "groove_sc.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "demo" in out.stdout


def test_benchmark_subcommand_is_wired(capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--help"])
    assert exit_info.value.code == 0
    assert "--config" in capsys.readouterr().out


# ------------------------------------------------------------------- bad input (issue 6)
@bad_input
def test_cli_unknown_command():
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code != 0


@bad_input
def test_cli_bad_epochs():
    with pytest.raises(SystemExit) as info:
        main(["demo", "--epochs", "zero"])
    assert info.value.code != 0


@bad_input
def test_cli_demo_bad_perturbations():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        main(["demo", "--perturbations", "0", "--epochs", "1", "--out", "/nonexistent/x"])
    assert info.value.code == 2
    assert "n_perturbations" in err.getvalue() and "Traceback" not in err.getvalue()
