"""JSON for the hot commands (state, start, kill, delete) without importing `json`.

`json` imports `re`, which imports `enum`, `functools` and `collections`: about 15 ms of a
command that otherwise takes 20. The parsing and string escaping here are CPython's own
(the `_json` accelerator that `json` itself uses); what is ours is only the writer's walk
over plain dicts, lists, strings, numbers, booleans and None -- the state JSON and log
lines, nothing else. Output is byte for byte what `json.dumps` gives for the same
arguments (a unit test compares them). Other interpreters fall back to `json`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - not CPython
    _json = None  # type: ignore[assignment]


class _Decoding:
    """The attributes `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_WS = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """json.loads for trusted, plain documents; ValueError on anything malformed."""
    if _json is None:  # pragma: no cover
        import json
        return json.loads(text)
    if isinstance(text, bytes):
        text = text.decode()
    scan = _json.make_scanner(_Decoding())
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = scan(text, start)
    except StopIteration:
        raise ValueError(f"not JSON at character {start}") from None
    except SystemError:
        # _json raises its errors as json.decoder.JSONDecodeError, which it looks up in
        # sys.modules only: with `json` not imported, an error comes out as SystemError.
        raise ValueError("not valid JSON") from None
    finally:
        _Decoding.memo.clear()
    if text[end:].strip(_WS):
        raise ValueError(f"extra data at character {end}")
    return obj


def dumps(obj: Any, indent: int | None = None) -> str:
    """json.dumps(obj) or json.dumps(obj, indent=N), for dicts, lists, tuples, str, int,
    float, bool and None."""
    if _json is None:  # pragma: no cover
        import json
        return json.dumps(obj, indent=indent)
    out: list[str] = []
    _write(obj, out, indent, 0)
    return "".join(out)


def _write(obj: Any, out: list[str], indent: int | None, level: int) -> None:
    if isinstance(obj, str):
        out.append(_json.encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        out.append(_float(obj))
    elif isinstance(obj, dict):
        _container([(k, v) for k, v in obj.items()], "{", "}", out, indent, level)
    elif isinstance(obj, (list, tuple)):
        _container([(None, v) for v in obj], "[", "]", out, indent, level)
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _container(items: list[tuple[Any, Any]], open_: str, close: str, out: list[str],
               indent: int | None, level: int) -> None:
    if not items:
        out.append(open_ + close)
        return
    if indent is None:
        sep, inner, outer = ", ", "", ""
    else:
        inner = "\n" + " " * (indent * (level + 1))
        outer = "\n" + " " * (indent * level)
        sep = ","
    out.append(open_)
    for i, (key, value) in enumerate(items):
        out.append((sep if i else "") + inner)
        if open_ == "{":
            out.append(_key(key) + ": ")
        _write(value, out, indent, level + 1)
    out.append(outer + close)


def _key(key: Any) -> str:
    """Dict keys as json.dumps writes them: strings, or numbers/booleans/None as strings."""
    if isinstance(key, str):
        return str(_json.encode_basestring_ascii(key))
    if key is True or key is False or key is None:
        return f'"{str(key).lower() if key is not None else "null"}"'
    if isinstance(key, int):
        return f'"{int.__repr__(key)}"'
    if isinstance(key, float):
        return f'"{_float(key)}"'
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _float(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)
