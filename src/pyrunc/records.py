"""`NamedTuple` for pyrunc's records, without importing `typing` at run time.

The type checker sees `typing.NamedTuple` itself. At run time a class written
`class X(NamedTuple): a: int; b: str = ""` becomes the same thing typing.NamedTuple would
make -- a `collections.namedtuple` with the annotated fields and their defaults, plus the
class's own methods and properties -- but without typing's import (with `re` and
`contextlib` behind it) and its per-field annotation checks: together ~15 ms of every
`create`. Annotations are never evaluated here; `from __future__ import annotations` keeps
them as strings anyway.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    import collections

    _SKIP = frozenset(("__module__", "__qualname__", "__annotations__", "__doc__",
                       "__orig_bases__", "__dict__", "__weakref__"))

    class _Meta(type):
        def __new__(mcls, name, bases, ns):  # noqa: N804 - a metaclass
            if ns.get("_root", False):
                return super().__new__(mcls, name, bases, ns)
            fields = list(ns.get("__annotations__", {}))
            defaults = []
            for field in fields:
                if field in ns:
                    defaults.append(ns[field])
                elif defaults:
                    raise TypeError(f"{name}: field {field} without a default follows one with it")
            cls = collections.namedtuple(name, fields, defaults=defaults or None,
                                         module=ns.get("__module__"))
            cls.__doc__ = ns.get("__doc__") or cls.__doc__
            for key, value in ns.items():
                if key not in _SKIP and key not in fields:
                    setattr(cls, key, value)
            return cls

    class NamedTuple(metaclass=_Meta):
        _root = True
