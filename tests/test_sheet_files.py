"""derive sheet's files: the problem variant beside the solution, no stale PDF, the user's umask;
--notation reaches the sheet."""
from __future__ import annotations

import os
import stat

import pytest

from derive.cli import main
from derive.sheet import pdf as sheet_pdf


def test_problem_variant_is_written_beside_the_solution(tmp_path):
    assert main(["sheet", "linear-rnn", "-o", str(tmp_path)]) == 0
    assert main(["sheet", "linear-rnn", "--variant", "problem", "-o", str(tmp_path)]) == 0
    solution = (tmp_path / "linear-rnn.tex").read_text()
    problem = (tmp_path / "linear-rnn-problem.tex").read_text()
    assert "solution sheet" in solution and "problem sheet" in problem


def test_a_failed_build_leaves_no_stale_pdf(tmp_path, monkeypatch, capsys):
    (tmp_path / "linear-rnn.pdf").write_bytes(b"%PDF- an old build")

    def fail(tex, stem="sheet"):
        raise sheet_pdf.LatexError("LaTeX failed: ! Undefined control sequence.")

    monkeypatch.setattr(sheet_pdf, "latex_available", lambda: True)
    monkeypatch.setattr(sheet_pdf, "compile_tex", fail)
    assert main(["sheet", "linear-rnn", "--pdf", "-o", str(tmp_path)]) == 1
    assert (tmp_path / "linear-rnn.tex").exists()
    assert not (tmp_path / "linear-rnn.pdf").exists()  # an old PDF would pass for the new .tex's
    assert "LaTeX failed" in capsys.readouterr().err


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_respect_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert main(["sheet", "linear-rnn", "-o", str(tmp_path)]) == 0
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "linear-rnn.tex").stat().st_mode)
    assert mode == 0o666 & ~umask, oct(mode)


def test_notation_option_reaches_the_sheet(tmp_path):
    assert main(["sheet", "elman", "--notation", "goodfellow", "-o", str(tmp_path)]) == 0
    tex = (tmp_path / "elman.tex").read_text()
    assert r"\nabla_{h^{(t)}} L" in tex and r"\tau = 3" in tex and r"\delta_{t}" not in tex
    assert main(["sheet", "elman", "-o", str(tmp_path)]) == 0
    assert r"\delta_{t}^{(h)}" in (tmp_path / "elman.tex").read_text()


def test_unknown_notation_is_one_line_exit_2(capsys):
    assert main(["sheet", "elman", "--notation", "bishop"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bishop'" in err and len(err.strip().splitlines()) == 1
