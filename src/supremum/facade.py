"""Subpackages callable as the public API function of their name.

`supremum.compress`, `supremum.evaluate` and `supremum.frontier` are both subpackages and functions
of the public API (`supremum.api`). Once a subpackage is imported, the import system sets the
package attribute `supremum.<name>` to it, hiding the function; so each of these subpackages makes
itself callable, forwarding the call to `supremum.api.<name>`.
"""

from __future__ import annotations

import importlib
import sys
import types


class CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        api = importlib.import_module("supremum.api")  # by name: the API sits above the subpackages
        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(name: str) -> None:
    """Called at the end of the subpackage `name`'s __init__."""
    sys.modules[name].__class__ = CallableModule
