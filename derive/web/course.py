"""A course: which models and questions, at which T, how answers are read and what students see.

Read from a TOML file (``derive serve --course course.toml``) or made from the command line's flags;
every path in the file (spec files, the database) is relative to the file's folder. The models and
questions are fixed here, at start: a request can only choose among them.

    title = "BPTT, homework 3"
    steps = 3                      # T of every recurrent model (a model may set its own)
    notation = "auto"              # how answers are read: auto (LaTeX if it has \\ or braces) | plain | latex
    show_solutions = false         # after a submission, show the correct answer
    host = "127.0.0.1"             # anything but loopback prints a warning
    port = 8000
    database = "submissions.sqlite"
    token = "..."                  # the teacher page's; without it a new one is printed at every start
    timeout = 5                    # seconds per answer
    workers = 2                    # grading processes
    prepare = true                 # prepare every question before serving (slower start, fast first answers)

    [[model]]
    name = "linear-rnn"            # a built-in model, or spec = "my-rnn.toml"
    questions = ["W_rec", "delta_s_2"]   # default: every question of the problem sheet
    [[model]]
    name = "elman"
    options = { activation = "relu" }
    values = "W=0.5,x_2=[1,0]"     # the teacher's --at for this model's questions: fixed, and shown on the page
"""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from derive.errors import DeriveError
from derive.numbers.at_values import as_text, parse_at
from derive.reading import read_text

NOTATIONS = ("auto", "plain", "latex")
MAX_COURSE_BYTES = 1 << 20
KEYS = {"title", "steps", "notation", "show_solutions", "host", "port", "database", "token", "timeout", "workers",
        "prepare", "model"}
MODEL_KEYS = {"name", "spec", "questions", "options", "steps", "key", "values"}


@dataclass
class ModelEntry:
    ref: str  # built-in name or the spec's path
    key: str  # its address in the URL
    options: dict = field(default_factory=dict)
    questions: list[str] | None = None
    steps: int | None = None
    values: str | None = None  # the teacher's --at for every question of this model (as text), as a batch's


@dataclass
class Course:
    title: str = "derive: check your derivations"
    steps: int = 3
    notation: str = "auto"
    show_solutions: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    database: str | None = None
    token: str | None = None
    timeout: float = 5.0
    workers: int = 2
    prepare: bool = False
    models: list[ModelEntry] = field(default_factory=list)

    @property
    def latex(self) -> bool | None:
        """The grader's ``latex`` argument for the course's notation."""
        return {"auto": None, "plain": False, "latex": True}[self.notation]

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check(self) -> Course:
        if self.notation not in NOTATIONS:
            raise DeriveError(f"notation '{self.notation}': choose one of {', '.join(NOTATIONS)}")
        if not (isinstance(self.steps, int) and 1 <= self.steps <= 50):
            raise DeriveError(f"steps must be a whole number from 1 to 50 (got {self.steps!r})")
        if not (0 < float(self.timeout) <= 120):
            raise DeriveError(f"timeout must be between 0 and 120 seconds (got {self.timeout!r})")
        if not (isinstance(self.workers, int) and 1 <= self.workers <= 64):
            raise DeriveError(f"workers must be a whole number from 1 to 64 (got {self.workers!r})")
        if not (isinstance(self.port, int) and 0 <= self.port < 65536):
            raise DeriveError(f"port must be a whole number below 65536 (got {self.port!r})")
        if self.token is not None and len(self.token) < 8:
            raise DeriveError("the teacher token must have at least 8 characters")
        keys = [m.key for m in self.models]
        if len(set(keys)) != len(keys):
            raise DeriveError(f"two models of the course have one name ({', '.join(keys)}): give one a key")
        return self


def load_course(path: str | Path) -> Course:
    """The course of a TOML file; DeriveError (one line) when it is not a valid one."""
    path = Path(path)
    text = read_text(path, MAX_COURSE_BYTES, "the course file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeriveError(f"{path}: not a TOML file ({exc})") from None
    unknown = set(data) - KEYS
    if unknown:
        raise DeriveError(f"{path}: unknown key {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")
    folder = path.resolve().parent
    course = Course(**{k: v for k, v in data.items() if k != "model"})
    if course.database:
        course.database = str(folder / course.database)
    for n, entry in enumerate(data.get("model", []), 1):
        if not isinstance(entry, dict) or set(entry) - MODEL_KEYS or ("name" in entry) == ("spec" in entry):
            raise DeriveError(f"{path}: [[model]] number {n} needs name = \"a built-in\" or spec = \"file.toml\" "
                              f"(and optionally {', '.join(sorted(MODEL_KEYS - {'name', 'spec'}))})")
        ref = entry["name"] if "name" in entry else str(folder / entry["spec"])
        key = entry.get("key") or (entry["name"] if "name" in entry else Path(entry["spec"]).stem)
        course.models.append(ModelEntry(ref, str(key), {str(k): str(v) for k, v in entry.get("options", {}).items()},
                                        entry.get("questions"), entry.get("steps"), _values(path, n, entry)))
    return course.check()


def _values(path: Path, n: int, entry: dict) -> str | None:
    """A model's values (text 'W_rec=1,x_1=0.5' or a table), read now: a typo is the course file's error."""
    try:
        values = as_text(entry.get("values")) or None
        parse_at(values, entries=True)
    except (TypeError, ValueError):
        raise DeriveError(f"{path}: [[model]] number {n}: values must be numbers (a vector: a list of numbers)") \
            from None
    except DeriveError as exc:
        raise DeriveError(f"{path}: [[model]] number {n}: {exc}") from None
    return values
