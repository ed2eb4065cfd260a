import os

# Tests never write into the user's real data directory.
os.environ.setdefault("CONLAB_DATA_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                      "conlab-tests-%d" % os.getpid()))


import pytest  # noqa: E402


@pytest.fixture
def free_threaded_python():
    """The path of a free-threaded CPython; the test skips, saying why, when there is none."""
    from tests.helpers import NO_FREE_THREADED, free_threaded_python as find

    path = find()
    if path is None:
        pytest.skip(NO_FREE_THREADED)
    return path
