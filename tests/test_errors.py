"""The exception tree drawn in dynserver/errors.py holds for every module of the package."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import dynserver
from dynserver import errors
from dynserver.errors import DynserverError


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined at the top of a dynserver module, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(dynserver.__path__, "dynserver."):
        if module_info.name.endswith("__main__"):
            continue  # running it is the command line
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            defined_here = inspect.isclass(value) and value.__module__ == module.__name__
            if defined_here and issubclass(value, BaseException):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_dynserver_exception_derives_from_dynserver_error() -> None:
    found = exception_classes()
    assert "dynserver.dns.wire.WireError" in found  # the walk reaches nested packages
    strays = sorted(name for name, cls in found.items() if not issubclass(cls, DynserverError))
    assert strays == [], f"derive these from a class in dynserver/errors.py: {strays}"


def test_the_tree_is_drawn_in_the_errors_docstring() -> None:
    assert errors.__doc__ is not None
    for name, cls in exception_classes().items():
        assert cls.__name__ in errors.__doc__, f"{name} is missing from the tree in dynserver/errors.py"
