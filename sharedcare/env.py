"""Typed readers for settings that come from the environment.

Each helper refuses values it cannot understand, so a typo in a deployment fails at start-up rather than
quietly running with a default.
"""

import os


class ImproperlyConfiguredEnv(ValueError):
    pass


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfiguredEnv(f"{name} must be one of true/false/1/0/yes/no, not {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfiguredEnv(f"{name} must be a whole number, not {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfiguredEnv(f"{name} must be at least {minimum}, not {number}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int_map(
    name: str, default: dict[str, int], *, keys: tuple[str, ...], minimum: int | None = None
) -> dict[str, int]:
    """A map of names to whole numbers written `name=number,name=number`; the names given override `default`.

    Refuses a name outside `keys`, a name given twice, a pair without `=`, and a number that is not whole or is
    below `minimum`.
    """
    value = os.environ.get(name)
    result = dict(default)
    if value is None or value.strip() == "":
        return result
    seen: set[str] = set()
    for pair in value.split(","):
        if not pair.strip():
            continue
        key, equals, number_text = pair.partition("=")
        key = key.strip()
        if not equals:
            raise ImproperlyConfiguredEnv(
                f"{name} must be name=number pairs separated by commas, not {pair!r}"
            )
        if key not in keys:
            raise ImproperlyConfiguredEnv(f"{name} names {key!r}, which is not one of {', '.join(keys)}")
        if key in seen:
            raise ImproperlyConfiguredEnv(f"{name} names {key!r} twice")
        seen.add(key)
        try:
            number = int(number_text)
        except ValueError:
            raise ImproperlyConfiguredEnv(
                f"{name} must give {key} a whole number, not {number_text!r}"
            ) from None
        if minimum is not None and number < minimum:
            raise ImproperlyConfiguredEnv(f"{name} must give {key} at least {minimum}, not {number}")
        result[key] = number
    return result
