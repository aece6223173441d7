"""Every file a user names is read through derive.reading: bounded, one line on every failure."""
import subprocess
import sys

import pytest

from derive.errors import DeriveError
from derive.reading import read_limited, read_text


def test_a_file_within_the_limit_is_read_whole_and_a_bom_dropped(tmp_path):
    f = tmp_path / "a.txt"
    f.write_bytes("\ufeffW_rec*s_1 ✓".encode())
    assert read_text(f, 100, "the answer file") == "W_rec*s_1 ✓"
    assert read_limited(f, 100, "x") == f.read_bytes()


def test_an_endless_file_is_refused_after_limit_plus_one_bytes():
    with pytest.raises(DeriveError, match=r"cannot read spec /dev/zero: it is larger than the limit of 256 KiB"):
        read_limited("/dev/zero", 256 * 1024, "spec")


@pytest.mark.parametrize("content, limit, words", [
    (b"x" * 10001, 10000, "larger than the limit of 10 kB"),
    (b"x" * (2 ** 20 + 1), 2 ** 20, "larger than the limit of 1 MiB"),
    (b"ok \xff", 100, "not UTF-8 text (byte 0xff at offset 3)"),
])
def test_failures_name_the_file_and_the_reason(tmp_path, content, limit, words):
    f = tmp_path / "f"
    f.write_bytes(content)
    with pytest.raises(DeriveError) as err:
        read_text(f, limit, "the answers file")
    assert str(err.value).startswith(f"cannot read the answers file {f}: ") and words in str(err.value)
    with pytest.raises(DeriveError, match="No such file"):
        read_text(tmp_path / "missing", limit, "the answers file")


@pytest.mark.parametrize("argv", [
    ["gradcheck", "/dev/zero"],
    ["grade", "linear-rnn", "--wrt", "W_rec", "--answer-file", "/dev/zero"],
    ["grade", "linear-rnn", "--answers", "/dev/zero"],
])
def test_the_commands_refuse_an_endless_file_in_one_line(argv):
    r = subprocess.run([sys.executable, "-m", "derive", *argv], check=False, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "larger than the limit" in r.stderr, r.stderr
