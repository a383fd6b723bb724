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

import json
import math
import re
from typing import Any

from ._model import BY_TAG, BY_TYPE, Kind, zone_from, zone_parts

#: Largest magnitude written as a plain JSON number: beyond it, JavaScript and many JSON tools lose digits.
SAFE_INT = 2**53
_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{6}))?)?$")
_ZONED = {"tz", "fold"}


def encode(value: Any) -> Any:
    """The JSON-ready structure (dicts, lists, str, numbers, bool, None) that represents ``value``.

    Raises TypeError for a value no map can hold (see ``_model``).
    """
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if (kind is int and -SAFE_INT <= value <= SAFE_INT) or (kind is float and math.isfinite(value)):
        return value
    if kind is list:
        return [encode(v) for v in value]
    if kind is dict:
        if all(type(k) is str and not k.startswith("$") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"$dict": [[encode(k), encode(v)] for k, v in value.items()]}
    row = BY_TYPE.get(kind)
    if row is None:
        raise TypeError(f"type {kind.__module__}.{kind.__qualname__} cannot be stored in a map, so it has no tag")
    if row.text is None:
        assert row.parts is not None  # (every row but list and dict, written above, has a text or parts)
        return {f"${row.tag}": encode(row.parts(value))}
    tagged: dict[str, Any] = {f"${row.tag}": row.text(value)}
    if row.zoned:
        if value.tzinfo is not None:
            tagged["tz"] = _encode_zone(zone_parts(value.tzinfo))
        if value.fold:
            tagged["fold"] = 1
    return tagged


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
    row = BY_TAG.get(tag[1:]) if tag != "$dict" else None
    if ((row is None or (row.text is None and row.build is None)) and tag != "$dict") or len(tags) > 1:
        raise ValueError(f"unknown tag {tags if len(tags) > 1 else tag!r}; known: {sorted(_TAGS)}")
    extra = set(data) - {tag} - (_ZONED if row is not None and row.zoned else set())
    if extra:
        raise ValueError(f"tag {tag} has unknown parameters {sorted(extra)}")
    try:
        return _dict(data[tag]) if row is None else _read(row, data[tag], data)
    except (TypeError, ValueError, KeyError, ArithmeticError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"bad {tag} value {data[tag]!r}: {exc}") from None


def _read(row: Kind, payload: Any, tagged: dict[str, Any]) -> Any:
    if row.text is None:
        assert row.build is not None
        if type(payload) is not list:
            raise TypeError("expected a JSON array")
        return row.build([decode(v) for v in payload])
    assert row.parse is not None
    if type(payload) is not str:
        raise TypeError("expected a JSON string")
    value = row.parse(payload)
    if row.zoned:
        fold = tagged.get("fold", 0)
        if fold not in (0, 1) or type(fold) is not int:
            raise ValueError("fold must be 0 or 1")
        value = value.replace(tzinfo=zone_from(_decode_zone(tagged.get("tz"))), fold=fold)
    return value


def _dict(payload: Any) -> dict[Any, Any]:
    pairs = [decode(v) for v in payload] if type(payload) is list else None
    if pairs is None or any(type(p) is not list or len(p) != 2 for p in pairs):
        raise TypeError("expected an array of [key, value] pairs")
    return dict(pairs)


#: The tags a file may hold: each type's that JSON lacks, and $dict (a dict whose keys JSON objects cannot hold).
_TAGS = ["$dict", *(f"${row.tag}" for row in BY_TAG.values() if row.text is not None or row.build is not None)]


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


# -- time zones -------------------------------------------------------------------------------------------------


def _format_offset(micros: int) -> str:
    """A UTC offset in microseconds as ``+HH:MM[:SS[.ffffff]]``."""
    sign = "-" if micros < 0 else "+"
    seconds, micros = divmod(abs(micros), 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    if seconds or micros:
        text += f":{seconds:02d}"
    if micros:
        text += f".{micros:06d}"
    return text


def _parse_offset(text: str) -> int:
    """Inverse of :func:`_format_offset`."""
    match = _OFFSET.match(text)
    if match is None:
        raise ValueError(f"bad UTC offset {text!r}: expected +HH:MM[:SS[.ffffff]]")
    sign, hours, minutes, seconds, micros = match.groups()
    offset = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds or 0)) * 1_000_000 + int(micros or 0)
    return -offset if sign == "-" else offset


def _encode_zone(parts: Any) -> Any:
    """A time zone's stored parts (``_model.zone_parts``) as tagged JSON writes them: ``"+02:00"`` for an offset,
    ``{"offset": ..., "name": ...}`` for a named one, a zone key as it is."""
    if type(parts) is str:
        return parts
    offset = _format_offset(parts[0])
    return {"offset": offset, "name": parts[1]} if len(parts) == 2 else offset


def _decode_zone(data: Any) -> Any:
    """Inverse of :func:`_encode_zone`: the zone's parts, which ``_model.zone_from`` makes a tzinfo."""
    if data is None:
        return None
    if type(data) is dict:
        if set(data) != {"offset", "name"} or type(data["name"]) is not str or type(data["offset"]) is not str:
            raise ValueError('a named tz must be {"offset": "+HH:MM", "name": "..."}')
        return [_parse_offset(data["offset"]), data["name"]]
    if type(data) is not str:
        raise TypeError("expected a JSON string")
    return [_parse_offset(data)] if data[:1] in ("+", "-") else data
