import os

# Tests never write into the user's real data directory.
os.environ.setdefault("CONLAB_DATA_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                      "conlab-tests-%d" % os.getpid()))
