"""The JSON schema's findings as one line each (`studies.toy.eval.n: expected integer, found 'zero'`)
instead of jsonschema's dump of the failing sub-schema. Its own module, importing nothing of the
package, so a command that checks a settings file (motab.settings_file) does not depend on the
workflow's other checks (motab.config_check) and their imports."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any


def _key(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error) -> list[tuple[str, str]]:
    """(key path, what was expected) lines of one jsonschema error."""
    key, kind, want, found = _key(error.absolute_path), error.validator, error.validator_value, error.instance
    if kind == "additionalProperties" and isinstance(found, dict):
        known = sorted(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        extra = sorted(name for name in set(found) - set(known) if not any(re.search(p, name) for p in patterns))
        names = known + [f"names matching {p}" for p in patterns]
        hint = f"known: {', '.join(names)}" if names else "this mapping takes names, not these keys"
        return [(_key([*error.absolute_path, name]), f"unknown key ({hint})") for name in extra] or [
            (key, error.message)
        ]
    if kind == "required":
        missing = [name for name in want if isinstance(found, dict) and name not in found]
        return [(key, f"missing required key(s) {', '.join(missing)}")]
    if kind == "type":
        return [(key, f"expected {want if isinstance(want, str) else ' or '.join(want)}, found {_short(found)}")]
    if "propertyNames" in error.schema_path:  # a mapping's key itself is not an allowed name
        return [
            (
                _key([*error.absolute_path, found]),
                f"unknown name (expected one of {', '.join(map(str, want))})"
                if kind == "enum"
                else f"not an allowed name ({error.message})",
            )
        ]
    if kind == "enum":
        return [(key, f"expected one of {', '.join(map(str, want))}, found {_short(found)}")]
    if kind == "const":
        return [(key, f"expected {want!r}, found {_short(found)}")]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return [(key, f"expected a number {sign} {want}, found {_short(found)}")]
    if kind in ("minItems", "maxItems", "minProperties"):
        bound = "at least" if kind.startswith("min") else "at most"
        unit = "entries" if kind == "minProperties" else "items"
        return [(key, f"expected {bound} {want} {unit}, found {len(found)}")]
    if kind == "pattern":
        return [(key, f"expected text matching {want}, found {_short(found)}")]
    if kind == "oneOf" and all(isinstance(s, dict) and set(s) == {"required"} for s in want):
        options = [" + ".join(s["required"]) for s in want]
        return [(key, f"expected exactly one of the keys {', '.join(options)}")]
    if kind == "not":
        return [(key, f"{_short(found)} is not allowed here")]
    if error.context:  # anyOf / oneOf: the closest alternative's complaint
        from jsonschema.exceptions import best_match

        return _describe(best_match(error.context))
    return [(key, error.message if len(error.message) <= 200 else error.message[:197] + "...")]


def schema_errors(config: dict, schema: dict) -> list[str]:
    """One `key: expected ...` line per schema violation, sorted by key."""
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    lines = set()
    for error in validator.iter_errors(config):
        lines.update(f"{key}: {what}" for key, what in _describe(error))
    return sorted(lines)
