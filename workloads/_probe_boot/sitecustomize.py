"""conlab's probe boot: `conlab watch` prepends this directory to PYTHONPATH.

With CONLAB_PROBE_FD set, it starts the probe (../probe.py, loaded by path under a private
name, so a program with its own `workloads` package is not confused); without it, it does
nothing. Either way it then runs the sitecustomize the user would have had without us (the
next one on sys.path), so their set-up still happens. Only modules the interpreter has
already loaded at start-up are used here.
"""


def _start_probe():
    import os
    import sys

    if "CONLAB_PROBE_FD" not in os.environ or "_conlab_probe" in sys.modules:
        return
    bootstrap = sys.modules["_frozen_importlib"]
    external = sys.modules["_frozen_importlib_external"]
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "probe.py")
    try:
        spec = external.spec_from_file_location("_conlab_probe", path)
        module = bootstrap.module_from_spec(spec)
        sys.modules["_conlab_probe"] = module
        spec.loader.exec_module(module)
        module.start()
    except Exception:
        pass  # the program runs as if unwatched


def _chain_user_sitecustomize():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    others = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = sys.modules["_frozen_importlib_external"].PathFinder.find_spec("sitecustomize", others)
    if spec is None or spec.loader is None:
        return
    module = sys.modules["_frozen_importlib"].module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)  # its errors reach site, as they would without us


_start_probe()
_chain_user_sitecustomize()
