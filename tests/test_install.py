"""The package works from an installed wheel, not only from the source tree."""
import os
import subprocess
import sys


def test_wheel_install_finds_specs_and_templates(tmp_path):
    target = tmp_path / "site"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), root], check=True, capture_output=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(target))
    work = tmp_path / "elsewhere"
    work.mkdir()
    for args in (["list"], ["gradcheck", "tanh-rnn", "--steps", "4"]):
        proc = subprocess.run([sys.executable, "-m", "derive", *args], cwd=work, env=env, check=False,
                              capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert "lstm-cell" in subprocess.run([sys.executable, "-m", "derive", "list"], cwd=work, env=env,
                                         check=False, capture_output=True, text=True).stdout
    imported = subprocess.run([sys.executable, "-c", "import derive; print(derive.__file__)"], cwd=work, env=env,
                              check=False, capture_output=True, text=True).stdout
    assert imported.startswith(str(target))
    # derive serve's pages and its KaTeX copy (package data: math typeset with no network)
    for part in ("derive/web/static/katex/katex.min.js", "derive/web/static/katex/fonts/KaTeX_Main-Regular.woff2",
                 "derive/templates/web/question.html.j2", "derive/templates/web/page.js.j2"):
        assert (target / part).is_file(), part
