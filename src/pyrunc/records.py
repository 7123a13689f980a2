"""`NamedTuple` for pyrunc's records, without importing `typing` or `collections` at run time.

The type checker sees `typing.NamedTuple` itself. At run time a class written
`class X(NamedTuple): a: int; b: str = ""` becomes a tuple subclass with the annotated
fields (read-only properties), their defaults, `_fields`, `_replace` and `_asdict`, plus the
class's own methods and properties: what pyrunc uses of a named tuple. typing's import (with
`re` behind it) and its per-field checks cost ~15 ms of every `create`; collections'
namedtuple costs its import (~3 ms) and an `exec` per class (~0.1 ms each, ~30 classes).
Annotations are never evaluated here; `from __future__ import annotations` keeps them as
strings anyway.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    from _operator import itemgetter

    _SKIP = frozenset(("__module__", "__qualname__", "__annotations__", "__doc__",
                       "__orig_bases__", "__dict__", "__weakref__"))
    _MISSING = object()

    class _Record(tuple):
        __slots__ = ()
        _fields: tuple = ()
        _defaults: tuple = ()  # one per field, _MISSING where there is none

        def __new__(cls, *args, **kwargs):
            fields = cls._fields
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, "
                                f"{len(args)} given")
            values = list(args)
            for i in range(len(args), len(fields)):
                value = kwargs.pop(fields[i], cls._defaults[i])
                if value is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing argument {fields[i]!r}")
                values.append(value)
            if kwargs:
                for name in kwargs:
                    why = "got multiple values for" if name in fields else "got an unexpected"
                    raise TypeError(f"{cls.__name__}() {why} argument {name!r}")
            return tuple.__new__(cls, values)

        def __getnewargs__(self):
            return tuple(self)

        def __repr__(self):
            inner = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self))
            return f"{type(self).__name__}({inner})"

        def _replace(self, **changes):
            values = [changes.pop(n, v) for n, v in zip(self._fields, self)]
            if changes:
                raise ValueError(f"got unexpected field names: {list(changes)!r}")
            return tuple.__new__(type(self), values)

        def _asdict(self):
            return dict(zip(self._fields, self))

    class _Meta(type):
        def __new__(mcls, name, bases, ns):  # noqa: N804 - a metaclass
            if ns.get("_root", False):
                return super().__new__(mcls, name, bases, ns)
            fields = tuple(ns.get("__annotations__", {}))
            defaults = []
            for field in fields:
                if field in ns:
                    defaults.append(ns[field])
                elif any(d is not _MISSING for d in defaults):
                    raise TypeError(f"{name}: field {field} without a default follows one with it")
                else:
                    defaults.append(_MISSING)
            body = {"__slots__": (), "_fields": fields, "_defaults": tuple(defaults),
                    "__module__": ns.get("__module__"), "__qualname__": ns.get("__qualname__", name),
                    "__doc__": ns.get("__doc__")}
            for i, field in enumerate(fields):
                body[field] = property(itemgetter(i), doc=f"field {i}")
            for key, value in ns.items():
                if key not in _SKIP and key not in fields:
                    body[key] = value
            return type.__new__(type, name, (_Record,), body)

    class NamedTuple(metaclass=_Meta):
        _root = True
