"""Tagged JSON: every value a map can hold, as JSON, losslessly (same types, same values, same order).

Used by the command line tool to show, export and import maps, so that a file written by ``export`` is
readable by people and other tools, and ``import`` restores exactly the map that was exported. Plain JSON is
valid input too: it reads as the natural Python values (object -> dict, array -> list, number -> int/float).

Values JSON has natively are written natively:

- ``None``, ``True``, ``False``, ``str`` -> ``null``, ``true``, ``false``, string (a lone surrogate is written
  as a ``\\udXXX`` escape by :func:`dumps`, which JSON allows and Python reads back);
- ``int`` in JSON's safe range (``|n| <= 2**53``) -> number; ``float`` that is finite -> number with a
  fraction or exponent (``1.0``, ``-0.0``, ``1e+300``), so it never reads back as an int;
- ``list`` -> array; ``dict`` whose keys are all ``str`` not starting with ``$`` -> object, in order.

Everything else is a *tag*: a JSON object with exactly one key starting with ``$`` (the type), sometimes with
parameters (keys without ``$``):

=============================  ===============================================================================
``{"$int": "-123..."}``        int beyond 2**53 (decimal; ``"0x..."`` hex beyond ~3,900 digits)
``{"$float": "nan"}``          float nan, ``"inf"``, ``"-inf"``
``{"$complex": [re, im]}``     complex; ``re`` and ``im`` are floats as above
``{"$bytes": "AAE="}``         bytes, base64; ``$bytearray`` likewise for bytearray
``{"$decimal": "1.10"}``       Decimal, ``str(d)`` (exact, keeps the exponent, NaN, Infinity)
``{"$uuid": "1234..."}``       UUID, canonical text
``{"$date": "2024-02-29"}``    date, ISO 8601
``{"$time": "23:01:02"}``      time, ISO 8601 without offset; parameters ``tz`` and ``fold`` as below
``{"$datetime": "2024-..."}``  datetime, ISO 8601 without offset; parameters ``tz`` and ``fold``
``{"$timedelta": [d, s, us]}`` timedelta (days, seconds, microseconds: its exact normalized fields)
``{"$tuple": [...]}``          tuple; ``$set``, ``$frozenset`` likewise, elements in iteration order
``{"$dict": [[k, v], ...]}``   dict with a key that is not a str, or a str starting with ``$``
=============================  ===============================================================================

``tz`` is absent for a naive value; ``"+02:00"`` (``+HH:MM[:SS[.ffffff]]``) for ``datetime.timezone`` of that
offset; ``{"offset": "+02:00", "name": "EET"}`` for a timezone given an explicit name; any other string is the
key of a ``zoneinfo.ZoneInfo``. ``fold`` is present (``1``) only when the value's fold is 1. A JSON object with
a ``$`` key that is not exactly one known tag with its known parameters is an error, never read as a dict.
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import math
import re
import uuid
from collections.abc import Callable
from typing import Any

#: Largest magnitude written as a plain JSON number: beyond it, JavaScript and many JSON tools lose digits.
SAFE_INT = 2**53
#: Ints wider than this are written in hex: Python limits decimal conversion to 4,300 digits by default.
_DECIMAL_BITS = 12_000
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{6}))?)?$")
_PARAMETERS = {"$datetime": {"tz", "fold"}, "$time": {"tz", "fold"}}


def encode(value: Any) -> Any:
    """The JSON-ready structure (dicts, lists, str, numbers, bool, None) that represents ``value``.

    Raises TypeError for a value no map can hold (see ``_values.py``).
    """
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        if -SAFE_INT <= value <= SAFE_INT:
            return value
        return {"$int": str(value) if value.bit_length() <= _DECIMAL_BITS else hex(value)}
    if kind is float:
        return value if math.isfinite(value) else {"$float": repr(value)}
    if kind is list:
        return [encode(v) for v in value]
    if kind is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if kind in (tuple, set, frozenset):
        return {f"${kind.__name__}": [encode(v) for v in value]}
    if kind is bytes or kind is bytearray:
        return {f"${kind.__name__}": base64.b64encode(value).decode("ascii")}
    if kind is complex:
        return {"$complex": [encode(value.real), encode(value.imag)]}
    if kind is decimal.Decimal:
        return {"$decimal": str(value)}
    if kind is uuid.UUID:
        return {"$uuid": str(value)}
    if kind is _dt.date:
        return {"$date": value.isoformat()}
    if kind is _dt.timedelta:
        return {"$timedelta": [value.days, value.seconds, value.microseconds]}
    if kind is _dt.datetime or kind is _dt.time:
        tagged: dict[str, Any] = {f"${kind.__name__}": value.replace(tzinfo=None, fold=0).isoformat()}
        if value.tzinfo is not None:
            tagged["tz"] = _encode_tz(value.tzinfo)
        if value.fold:
            tagged["fold"] = 1
        return tagged
    raise TypeError(f"type {kind.__module__}.{kind.__qualname__} cannot be stored in a map, so it has no tag")


def decode(data: Any) -> Any:
    """The value that ``data`` (parsed JSON) represents; inverse of :func:`encode`. Raises ValueError."""
    kind = type(data)
    if data is None or kind in (bool, str, int, float):
        return data
    if kind is list:
        return [decode(v) for v in data]
    if kind is not dict:
        raise ValueError(f"not a JSON value: {kind.__name__}")
    tags = [k for k in data if k.startswith("$")]
    if not tags:
        return {k: decode(v) for k, v in data.items()}
    tag = tags[0]
    reader = _READERS.get(tag)
    if reader is None or len(tags) > 1:
        raise ValueError(f"unknown tag {tags[0] if reader is None else tags!r}; known: {sorted(_READERS)}")
    extra = set(data) - {tag} - _PARAMETERS.get(tag, set())
    if extra:
        raise ValueError(f"tag {tag} has unknown parameters {sorted(extra)}")
    try:
        return reader(data[tag], data)
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"bad {tag} value {data[tag]!r}: {exc}") from None


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as tagged JSON text; non-ASCII text stays readable unless it holds a lone surrogate, which
    UTF-8 cannot carry: then the whole text is escaped to ASCII (still exact)."""
    data = encode(value)
    text = json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(data, ensure_ascii=True, indent=indent, allow_nan=False)
    return text


def loads(text: str | bytes) -> Any:
    """The value tagged (or plain) JSON text represents. Raises ValueError (json.JSONDecodeError included, and
    for text nested deeper than the parser's recursion)."""
    try:
        return decode(json.loads(text))
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


# -- readers ---------------------------------------------------------------------------------------------------


def _items(payload: Any) -> list[Any]:
    if type(payload) is not list:
        raise TypeError("expected a JSON array")
    return [decode(v) for v in payload]


def _float(payload: Any) -> float:
    value = decode(payload)
    if type(value) not in (int, float):
        raise TypeError("expected a number")
    return float(value)


def _int(payload: Any, _: Any) -> int:
    text = _text(payload)
    return int(text, 16) if text.lstrip("+-").startswith("0x") else int(text)


def _text(payload: Any) -> str:
    if type(payload) is not str:
        raise TypeError("expected a JSON string")
    return payload


def _bytes(payload: Any, _: Any) -> bytes:
    return base64.b64decode(_text(payload), validate=True)


def _complex(payload: Any, _: Any) -> complex:
    items = payload if type(payload) is list else None
    if items is None or len(items) != 2:
        raise TypeError("expected [real, imag]")
    return complex(_float(items[0]), _float(items[1]))


def _timedelta(payload: Any, _: Any) -> _dt.timedelta:
    if type(payload) is not list or len(payload) != 3 or any(type(v) is not int for v in payload):
        raise TypeError("expected [days, seconds, microseconds] as integers")
    return _dt.timedelta(days=payload[0], seconds=payload[1], microseconds=payload[2])


def _datetime(payload: Any, tagged: dict[str, Any]) -> _dt.datetime:
    naive = _dt.datetime.fromisoformat(_text(payload))
    return naive.replace(tzinfo=_decode_tz(tagged.get("tz")), fold=_fold(tagged))


def _time(payload: Any, tagged: dict[str, Any]) -> _dt.time:
    naive = _dt.time.fromisoformat(_text(payload))
    return naive.replace(tzinfo=_decode_tz(tagged.get("tz")), fold=_fold(tagged))


def _fold(tagged: dict[str, Any]) -> int:
    fold = tagged.get("fold", 0)
    if fold not in (0, 1) or type(fold) is not int:
        raise ValueError("fold must be 0 or 1")
    return int(fold)


def _dict(payload: Any, _: Any) -> dict[Any, Any]:
    pairs = _items(payload)
    if any(type(p) is not list or len(p) != 2 for p in pairs):
        raise TypeError("expected an array of [key, value] pairs")
    return dict(pairs)


_READERS: dict[str, Callable[[Any, Any], Any]] = {
    "$int": _int,
    "$float": lambda p, _: float(_text(p)),
    "$complex": _complex,
    "$bytes": _bytes,
    "$bytearray": lambda p, t: bytearray(_bytes(p, t)),
    "$decimal": lambda p, _: decimal.Decimal(_text(p)),
    "$uuid": lambda p, _: uuid.UUID(_text(p)),
    "$date": lambda p, _: _dt.date.fromisoformat(_text(p)),
    "$time": _time,
    "$datetime": _datetime,
    "$timedelta": _timedelta,
    "$tuple": lambda p, _: tuple(_items(p)),
    "$set": lambda p, _: set(_items(p)),
    "$frozenset": lambda p, _: frozenset(_items(p)),
    "$dict": _dict,
}


# -- time zones -------------------------------------------------------------------------------------------------


def _format_offset(offset: _dt.timedelta) -> str:
    sign = "-" if offset < _dt.timedelta(0) else "+"
    micros = abs(offset) // _dt.timedelta(microseconds=1)
    seconds, micros = divmod(micros, 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    if seconds or micros:
        text += f":{seconds:02d}"
    if micros:
        text += f".{micros:06d}"
    return text


def _parse_offset(text: str) -> _dt.timedelta:
    match = _OFFSET.match(text)
    if match is None:
        raise ValueError(f"bad UTC offset {text!r}: expected +HH:MM[:SS[.ffffff]]")
    sign, hours, minutes, seconds, micros = match.groups()
    offset = _dt.timedelta(
        hours=int(hours), minutes=int(minutes), seconds=int(seconds or 0), microseconds=int(micros or 0)
    )
    return -offset if sign == "-" else offset


def _encode_tz(tz: _dt.tzinfo) -> Any:
    if type(tz) is _dt.timezone:
        offset, *name = tz.__getinitargs__()  # type: ignore[attr-defined]
        return {"offset": _format_offset(offset), "name": name[0]} if name else _format_offset(offset)
    key = getattr(tz, "key", None)
    if type(tz).__module__ == "zoneinfo" and type(tz).__name__ == "ZoneInfo" and isinstance(key, str):
        return key
    raise TypeError(f"tzinfo {type(tz).__module__}.{type(tz).__qualname__} cannot be stored in a map")


def _decode_tz(data: Any) -> _dt.tzinfo | None:
    if data is None:
        return None
    if type(data) is dict:
        if set(data) != {"offset", "name"} or type(data["name"]) is not str:
            raise ValueError('a named tz must be {"offset": "+HH:MM", "name": "..."}')
        return _dt.timezone(_parse_offset(_text(data["offset"])), data["name"])
    text = _text(data)
    if text[:1] in ("+", "-"):
        return _dt.timezone(_parse_offset(text))
    import zoneinfo

    return zoneinfo.ZoneInfo(text)
