"""Settings: their defaults, the environment variables that override them, and their validation.

The environment is read here and nowhere else. As in 1.0.0, an environment variable
``PERSISTENCE_<NAME>`` wins over the same setting passed as an argument.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._errors import ConfigurationError, MixOfConfigAndMapArgsPassed

#: The four settings of 1.0.0. They are the only keyword arguments of ``PersistentMap()`` that configure it
#: (every other keyword is map data), so they stay the only reserved words.
RESERVED_WORDS = ("table_name", "table_key", "key_field_name", "value_field_name")

#: Attribute names the stored format uses besides the key and value fields (see FORMAT.md).
FORMAT_ATTRIBUTE_PREFIX = "alp_"

_TABLE_NAME_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_BILLING_MODES = ("PROVISIONED", "PAY_PER_REQUEST")


#: The longest table_key: DynamoDB's partition key holds 2,048 bytes; a shard key appends "#alp#<sid>#<index>".
TABLE_KEY_MAX = 2_000


class Settings(NamedTuple):
    """Where and how one map is stored. Build it with :meth:`resolve`, which applies the environment."""

    table_name: str = "AWSLambdaPersistence"
    table_key: str = ""
    key_field_name: str = "key"
    value_field_name: str = "value"
    #: Seconds after which a read first checks DynamoDB for a newer version; None never checks (1.0.0).
    max_age: float | None = None
    #: Commit attempts before ConflictError when other containers keep winning.
    max_attempts: int = 20
    #: Used only when this library has to create the table.
    billing_mode: str = "PROVISIONED"
    read_capacity: int = 5
    write_capacity: int = 5

    @classmethod
    def resolve(cls, arguments: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
        """Merge defaults, ``arguments`` and the environment (which wins), then validate."""
        env = os.environ if environ is None else environ
        known = cls.__annotations__
        unknown = set(arguments) - set(known)
        if unknown:
            raise ConfigurationError(f"unknown setting(s) {sorted(unknown)}; known settings: {sorted(known)}")
        if env.get("PERSISTENCE_TABLE_KEY") == "":
            raise ConfigurationError(
                "PERSISTENCE_TABLE_KEY is set but empty: give it the map's key, or unset it to use "
                "AWS_LAMBDA_FUNCTION_NAME"
            )
        values: dict[str, Any] = {"table_key": env.get("AWS_LAMBDA_FUNCTION_NAME", "")}
        values.update({k: v for k, v in arguments.items() if v is not None})
        for name in known:
            raw = env.get(f"PERSISTENCE_{name.upper()}")
            if raw is not None:
                values[name] = _parse(name, raw)
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        if not self.table_key:
            raise ConfigurationError(
                "table_key is not set and AWS_LAMBDA_FUNCTION_NAME is empty (not running in Lambda?): "
                "pass PersistentMap(table_key='my-map') or set PERSISTENCE_TABLE_KEY"
            )
        if not (3 <= len(self.table_name) <= 255 and set(self.table_name) <= _TABLE_NAME_CHARACTERS):
            raise ConfigurationError(
                f"table_name {self.table_name!r} is not a valid DynamoDB table name "
                "(3-255 characters of A-Z a-z 0-9 _ . -)"
            )
        for name in ("key_field_name", "value_field_name"):
            value = getattr(self, name)
            if not value or value.startswith(FORMAT_ATTRIBUTE_PREFIX):
                raise ConfigurationError(
                    f"{name} {value!r} must be non-empty and must not start with "
                    f"{FORMAT_ATTRIBUTE_PREFIX!r} (reserved for the stored format)"
                )
        if self.key_field_name == self.value_field_name:
            raise ConfigurationError("key_field_name and value_field_name must differ")
        if self.billing_mode not in _BILLING_MODES:
            raise ConfigurationError(f"billing_mode must be one of {_BILLING_MODES}, not {self.billing_mode!r}")
        if self.max_attempts < 1 or self.read_capacity < 1 or self.write_capacity < 1:
            raise ConfigurationError("max_attempts, read_capacity and write_capacity must be at least 1")
        if self.max_age is not None and not self.max_age >= 0:  # (NaN too: no age would ever exceed it)
            raise ConfigurationError(f"max_age must be a number of seconds >= 0, or unset; not {self.max_age!r}")
        if len(self.table_key.encode("utf-8", "surrogatepass")) > TABLE_KEY_MAX:
            raise ConfigurationError(
                f"table_key is {len(self.table_key.encode('utf-8', 'surrogatepass')):,} bytes long; at most "
                f"{TABLE_KEY_MAX:,} (DynamoDB's 2,048-byte key, less what a segment's shard keys add to it)"
            )


#: Settings that are numbers; every other setting is a string.
_NUMBERS: dict[str, type[int] | type[float]] = {
    "max_age": float,
    "max_attempts": int,
    "read_capacity": int,
    "write_capacity": int,
}


def _parse(name: str, raw: str) -> Any:
    number = _NUMBERS.get(name)
    if number is None:
        return raw
    if name == "max_age" and not raw.strip():
        return None
    try:
        return number(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable PERSISTENCE_{name.upper()}={raw!r} is not a number") from None


def split_arguments(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split constructor keywords into (settings, map data) the way 1.0.0 did, refusing a mix of both."""
    config = {k: v for k, v in kwargs.items() if k in RESERVED_WORDS}
    data = {k: v for k, v in kwargs.items() if k not in RESERVED_WORDS}
    if config and data:
        env_example = " ".join(f'PERSISTENCE_{k.upper()}="{v}"' for k, v in config.items())
        args_example = ", ".join(f"{k}={v!r}" for k, v in config.items())
        raise MixOfConfigAndMapArgsPassed(
            f"PersistentMap() got settings ({', '.join(config)}) and map data ({', '.join(data)}) as keyword "
            f"arguments, which is ambiguous. Either set the settings in the environment (export {env_example}) "
            f"or create the map first and then add the data:\n"
            f"    data = PersistentMap({args_example})\n    data.update({data!r})"
        )
    return config, data
