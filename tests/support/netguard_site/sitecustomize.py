"""Puts the test suite's network guard (tests/support/netguard.py, next to this directory) into every
Python started while the tests run: conftest puts this directory on PYTHONPATH, and Python imports
sitecustomize at start-up. The guard is loaded from its file, not as `tests.support.netguard`, so
that the child's sys.path is left as it was."""
import importlib.machinery
import importlib.util
import os
import sys


def _load(name: str, spec: importlib.machinery.ModuleSpec | None) -> object:
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_here = os.path.dirname(os.path.abspath(__file__))
_guard = _load("_tests_netguard", importlib.util.spec_from_file_location(
    "_tests_netguard", os.path.join(os.path.dirname(_here), "netguard.py")))
_guard.install(os.environ.get(_guard.LOG_ENV) or None)

# This file hides any other sitecustomize (a distribution's, a virtualenv's): run that one too.
_other = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if p and os.path.abspath(p) != _here])
if _other is not None:
    _load("_tests_netguard_next_sitecustomize", _other)
