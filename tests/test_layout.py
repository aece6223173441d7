"""The tree shows the pipeline: no import circles, no import from a lower stage up to a higher one,
no file over MAX_LINES, no two modules of one name doing different things.

Imports are read with the standard library's ast from every file under derive/, those inside
functions included (a function-level import closes a circle as surely as one at the top, it only
closes it later). Each check is a function of a tree, so the tests at the bottom run it on small
synthetic trees and see it fail.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "derive"
MAX_LINES = 400

# The stages, low to high: a module may import from its own area and from the areas of lower levels;
# the areas of one level (sheet, codegen, grade) do not import each other. A module belongs to the
# area of the longest prefix that names it; a module no prefix names fails the test until it is placed.
LEVELS: tuple[dict[str, tuple[str, ...]], ...] = (
    {"core": ("derive.errors", "derive.naming", "derive.ops", "derive.functions", "derive.model",
              "derive.templating", "derive.artifacts", "derive.models", "derive.display", "derive.notation",
              "derive.reading")},
    {"printing": ("derive.printing",)},
    {"spec": ("derive.spec", "derive.syntax")},
    {"calculus": ("derive.calculus",)},
    {"numbers": ("derive.numbers",)},
    {"sheet": ("derive.sheet",), "codegen": ("derive.codegen",), "grade": ("derive.grade",)},
    {"web": ("derive.web",)},
    {"cli": ("derive.cli",)},
    {"package face": ("derive", "derive.__main__")},
)

# Files over MAX_LINES, each waiting for its split: whoever splits one removes it here (the test
# fails while a listed file is already short enough, so the list cannot go stale).
PENDING_SPLIT: set[str] = set()

# Circles not yet broken: whoever breaks one removes it here (a listed circle that no longer exists
# fails the test).
PENDING_CIRCLES: list[list[str]] = []

# File names used by two modules that are not scalar/matrix twins, each waiting for the work that
# replaces one of them (none today).
# Whoever renames or merges one removes it here (a listed name that is no longer shared fails).
PENDING_RENAME: set[str] = set()


# -- reading a tree ------------------------------------------------------------------------------
def module_files(root: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (a package is its __init__)."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that the file imports anywhere in its body (functions included)."""
    found: set[str] = set()

    def resolve(dotted: str) -> str | None:  # the module itself, or the nearest enclosing one
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [resolve(a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if _is_package(path) else name.split(".")[:-1]
                anchor = here[:len(here) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from derive.grade import deadline` imports the submodule; `from derive.x import f` the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else resolve(base) for a in node.names]
        else:
            continue
        found.update(t for t in targets if t is not None and t != name)
    return found


def import_graph(root: Path, package: str = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


# -- the checks: each returns what is wrong, empty when all is well -------------------------------
def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules (~150)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def area_of(module: str, levels=LEVELS) -> tuple[int, str] | None:
    """(level, area) of the longest prefix naming the module; None when none does. The package's own
    name names its __init__ alone (the package face), not every module under it."""
    best: tuple[int, int, str] | None = None
    for level, areas in enumerate(levels):
        for area, prefixes in areas.items():
            for prefix in prefixes:
                inside = "." in prefix and module.startswith(prefix + ".")
                if (module == prefix or inside) and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), level, area)
    return None if best is None else (best[1], best[2])


def upward_imports(graph: dict[str, set[str]], levels=LEVELS) -> list[str]:
    """Imports into a higher level or into another area of the same level, and modules of no area."""
    wrong = []
    for module, targets in sorted(graph.items()):
        own = area_of(module, levels)
        if own is None:
            wrong.append(f"{module} belongs to no stage: place it in LEVELS")
            continue
        for target in sorted(targets):
            theirs = area_of(target, levels)
            if theirs is None:
                continue  # reported as a module of its own
            if theirs[0] > own[0] or (theirs[0] == own[0] and theirs[1] != own[1]):
                wrong.append(f"{module} ({own[1]}) imports {target} ({theirs[1]})")
    return wrong


def long_files(root: Path, pending: set[str], package: str = PACKAGE, limit: int = MAX_LINES) -> list[str]:
    """Files over the limit that are not pending a split, and pending ones no longer over it."""
    lengths = {path.relative_to(root).as_posix(): len(path.read_text("utf-8").splitlines())
               for path in (root / package).rglob("*.py")}
    wrong = [f"{p} has {n} lines (over {limit})" for p, n in sorted(lengths.items()) if n > limit and p not in pending]
    for p in sorted(pending):
        if p not in lengths:
            wrong.append(f"{p} is listed in PENDING_SPLIT but no longer exists: remove it there")
        elif lengths[p] <= limit:
            wrong.append(f"{p} has {lengths[p]} lines now: remove it from PENDING_SPLIT")
    return wrong


def _twins(paths: list[Path]) -> bool:
    """One scalar/ and one matrix/ counterpart in sibling folders."""
    return (len(paths) == 2 and paths[0].parent.parent == paths[1].parent.parent
            and {p.parent.name for p in paths} == {"scalar", "matrix"})


def shared_names(root: Path, pending: set[str], package: str = PACKAGE) -> list[str]:
    """File names of two or more modules that are not twins, and pending names no longer shared."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in sorted((root / package).rglob("*.py")):
        if path.name != "__init__.py":
            by_name[path.name].append(path)
    wrong = []
    for file_name, paths in sorted(by_name.items()):
        shared = len(paths) > 1 and not _twins(paths)
        if shared and file_name not in pending:
            where = ", ".join(p.relative_to(root).as_posix() for p in paths)
            wrong.append(f"{file_name} names {len(paths)} modules: {where}")
        elif file_name in pending and not shared:
            wrong.append(f"{file_name} is no longer shared by modules that are not twins: "
                         "remove it from PENDING_RENAME")
    wrong += [f"{file_name} is listed in PENDING_RENAME but no module has that name: remove it there"
              for file_name in sorted(pending - set(by_name))]
    return wrong


# -- the tree of this repository -------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_the_graph_is_read(graph):
    # a reader that found nothing would pass every check below
    assert len(graph) > 50
    assert "derive.calculus.unroll" in graph["derive.calculus.bptt"]
    assert "derive.grade.deadline" in graph["derive.grade.verdict"]  # `from derive.grade import deadline`


def test_no_import_circles(graph):
    found = circles(graph)
    assert [c for c in found if c not in PENDING_CIRCLES] == []
    assert [c for c in PENDING_CIRCLES if c not in found] == [], "broken: remove it from PENDING_CIRCLES"


def test_no_import_from_a_lower_stage_into_a_higher_one(graph):
    assert upward_imports(graph) == []


def test_no_file_over_the_line_limit():
    assert long_files(ROOT, PENDING_SPLIT) == []


def test_no_two_modules_share_a_name_unless_twins():
    assert shared_names(ROOT, PENDING_RENAME) == []


# -- each check can fail: small trees with the fault built in --------------------------------------
def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")
    return tmp_path


def test_a_circle_through_a_function_level_import_is_found(tmp_path):
    root = _tree(tmp_path, {
        "derive/__init__.py": "",
        "derive/calculus/__init__.py": "",
        "derive/calculus/bptt.py": "def pieces(d):\n    from derive.sheet.notebook import pieces\n",
        "derive/sheet/__init__.py": "",
        "derive/sheet/notebook.py": "from derive.calculus.bptt import Derivation\n",
    })
    assert circles(import_graph(root)) == [["derive.calculus.bptt", "derive.sheet.notebook"]]


def test_a_circle_through_relative_and_package_imports_is_found(tmp_path):
    root = _tree(tmp_path, {
        "derive/__init__.py": "",
        "derive/grade/__init__.py": "",
        "derive/grade/a.py": "from . import b\n",
        "derive/grade/b.py": "from derive.grade.c import thing\n",
        "derive/grade/c.py": "import derive.grade.a\n",
        "derive/grade/d.py": "from derive.grade import a\n",  # reads the circle, is not in it
    })
    assert circles(import_graph(root)) == [["derive.grade.a", "derive.grade.b", "derive.grade.c"]]


def test_an_upward_import_a_sibling_import_and_an_unplaced_module_are_found(tmp_path):
    root = _tree(tmp_path, {
        "derive/__init__.py": "from derive.calculus import bptt\n",  # the package face may import anything
        "derive/naming.py": "",
        "derive/calculus/__init__.py": "",
        "derive/calculus/bptt.py": "from derive import naming\n\ndef f():\n    import derive.sheet.notebook\n",
        "derive/sheet/__init__.py": "",
        "derive/sheet/notebook.py": "from derive.calculus.bptt import f\nfrom derive.grade.verdict import Verdict\n",
        "derive/grade/__init__.py": "",
        "derive/grade/verdict.py": "",
        "derive/stray.py": "",
    })
    assert upward_imports(import_graph(root)) == [
        "derive.calculus.bptt (calculus) imports derive.sheet.notebook (sheet)",
        "derive.sheet.notebook (sheet) imports derive.grade.verdict (grade)",
        "derive.stray belongs to no stage: place it in LEVELS",
    ]


def test_a_long_file_and_a_stale_pending_entry_are_found(tmp_path):
    root = _tree(tmp_path, {
        "derive/__init__.py": "",
        "derive/long.py": "x = 1\n" * (MAX_LINES + 1),
        "derive/waiting.py": "x = 1\n" * (MAX_LINES + 1),
        "derive/split.py": "x = 1\n" * MAX_LINES,
    })
    assert long_files(root, {"derive/waiting.py"}) == ["derive/long.py has 401 lines (over 400)"]
    assert long_files(root, {"derive/waiting.py", "derive/long.py", "derive/split.py", "derive/gone.py"}) == [
        "derive/gone.py is listed in PENDING_SPLIT but no longer exists: remove it there",
        "derive/split.py has 400 lines now: remove it from PENDING_SPLIT",
    ]


def test_shared_names_other_than_twins_are_found(tmp_path):
    root = _tree(tmp_path, {
        "derive/__init__.py": "",
        "derive/sheet/__init__.py": "",
        "derive/sheet/scalar/context.py": "",
        "derive/sheet/matrix/context.py": "",  # twins: allowed
        "derive/sheet/scalar/vanishing.py": "",
        "derive/grade/matrix/vanishing.py": "",  # scalar/ and matrix/ of different stages: not twins
        "derive/cli/generate.py": "",
        "derive/generate.py": "",
        "derive/spec/parser.py": "",
    })
    assert shared_names(root, {"parser.py", "gone.py"}) == [
        "generate.py names 2 modules: derive/cli/generate.py, derive/generate.py",
        "parser.py is no longer shared by modules that are not twins: remove it from PENDING_RENAME",
        "vanishing.py names 2 modules: derive/grade/matrix/vanishing.py, derive/sheet/scalar/vanishing.py",
        "gone.py is listed in PENDING_RENAME but no module has that name: remove it there",
    ]
