import pytest

from derive import builtin_names, load


@pytest.fixture(scope="session")
def models():
    return {name: load(name) for name in builtin_names("scalar")}
