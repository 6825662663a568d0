"""Settings declared in code and described in schemas/config.schema.yaml agree: the synthesis method
registry (motab.synthesis.methods) and each method's params dataclass against the schema's `synth`
entries, and KDConfig (with every loss's params and the KDFlow keys) against the schema's kd block.
A key added to one side only, or typed differently, fails here rather than at a user's start-up."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from pathlib import Path

import pytest
import yaml

from motab.plan import STUDENT_METHODS, synth_algorithm
from motab.plan.codedeps import module_files
from motab.synthesis import methods
from motab.training import kdflow
from motab.training.kd.config import RULE_KEYS, KDConfig
from motab.training.kd.objectives import LOSSES

REPO = Path(__file__).resolve().parents[1]
JSON_TYPE = {bool: "boolean", int: "integer", float: "number", str: "string"}


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key written twice in one mapping (PyYAML keeps the last)."""


def _unique_mapping(loader, node, deep=False):
    keys = [loader.construct_object(key, deep=deep) for key, _ in node.value]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise yaml.constructor.ConstructorError(None, None, f"keys written twice: {twice}", node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.load((REPO / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"), Loader=_UniqueKeys)


def field_types(cls) -> dict[str, set[type]]:
    """{field: its Python types without None} (None = unset, which the schema says by absence)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[f.name] = {part for part in parts if part is not type(None)}
    return out


def type_errors(where: str, types_of: dict[str, set[type]], choices: dict, properties: dict) -> list[str]:
    """Fields whose schema property allows another JSON type, or other values, than the dataclass."""
    errors = []
    for name, kinds in sorted(types_of.items()):
        prop = properties.get(name)
        if prop is None:
            continue  # a missing key: the tests of the key sets name it
        if "enum" in prop:
            allowed = {JSON_TYPE[type(value)] for value in prop["enum"]}
            if choices.get(name) is not None and set(choices[name]) != set(prop["enum"]):
                errors.append(f"{where}.{name}: schema enum {prop['enum']} but choices {list(choices[name])}")
        else:
            declared = prop.get("type")
            allowed = set(declared) if isinstance(declared, list) else {declared}
        wanted = {JSON_TYPE.get(kind, "?") for kind in kinds}
        # a float field takes an integer (YAML writes 10 for 10.0), so "number" covers it, never "integer"
        if wanted != allowed:
            errors.append(f"{where}.{name}: schema allows {sorted(allowed)}, the dataclass {sorted(wanted)}")
    return errors


def test_the_schema_has_no_key_written_twice(schema):
    assert schema["$defs"]["study"]["properties"]["synth"]  # loaded with the strict loader


# ----------------------------------------------------------------------------- synthesis methods


def test_every_registered_method_loads_its_params_and_chunk_function():
    for name in methods.METHODS:
        params, chunk_fn = methods.load(name)
        assert dataclasses.is_dataclass(params) and params.__dataclass_params__.frozen, name
        assert inspect.iscoroutinefunction(chunk_fn), name
        assert isinstance(inspect.getattr_static(params, "chat_prompts"), property), name  # read by run.py
    assert {name for name, m in methods.METHODS.items() if m.drafts} == STUDENT_METHODS


def test_the_schema_describes_exactly_the_registered_methods_and_their_params(schema):
    synth = schema["$defs"]["study"]["properties"]["synth"]
    assert sorted(synth["properties"]) == sorted(methods.METHODS)
    errors = []
    for name, method in methods.METHODS.items():
        params, _ = methods.load(name)
        properties = synth["properties"][name]["properties"]
        keys = {f.name for f in dataclasses.fields(params)} | ({"student"} if method.drafts else set())
        if set(properties) != keys:
            errors.append(
                f"synth.{name}: schema only {sorted(set(properties) - keys)}, code only {sorted(keys - set(properties))}"
            )
            continue
        errors += type_errors(f"synth.{name}", field_types(params), {}, properties)
        missing = sorted(set(synth["properties"][name]["required"]) - keys)
        errors += [f"synth.{name}.required: {missing} are not params"] if missing else []
    assert errors == []


def test_a_suffixed_entry_is_checked_as_its_method(schema):
    """`skd_7b`, `skd_tokens_x`, `skd_gamma0p6`: the schema's pattern and the plan name the same method."""
    synth = schema["$defs"]["study"]["properties"]["synth"]
    for name in methods.METHODS:
        for entry in (f"{name}_x", f"{name}_gamma0p6", f"{name}_tokens_x"):
            matched = [ref for pattern, ref in synth["patternProperties"].items() if re.search(pattern, entry)]
            assert [ref["$ref"].rsplit("/", 1)[-1] for ref in matched] == [synth_algorithm(entry)], entry
        assert not any(re.search(pattern, name) for pattern in synth["patternProperties"])  # plain: properties


def test_editing_any_registered_method_reruns_synthesis():
    """The registry imports its methods lazily; motab.plan.codedeps still lists their files as the
    synth rule's code inputs."""
    synth = module_files(str(REPO), "synth")
    for method in methods.METHODS.values():
        assert method.module.replace(".", "/") + ".py" in synth


# ----------------------------------------------------------------------------- KD blocks


def test_the_kd_block_keys_are_kdconfig_its_losses_and_kdflow(schema):
    properties = schema["$defs"]["study"]["properties"]["kd"]["additionalProperties"]["properties"]
    general = {f.name for f in dataclasses.fields(KDConfig)} - {"loss_params"}
    losses = {f.name for loss in LOSSES.values() for f in dataclasses.fields(loss.params)}
    flags = set(kdflow.SCRIPT_FLAGS) | set(kdflow.DSKD_FLAGS) | set(kdflow.OWN_KEYS)
    code = general | losses | set(RULE_KEYS) | flags
    assert sorted(set(properties) - code) == [], "in the schema, read by no code"
    assert sorted(code - set(properties)) == [], "read by code, missing from the schema"


def test_the_kd_block_types_and_choices_are_kdconfigs(schema):
    properties = schema["$defs"]["study"]["properties"]["kd"]["additionalProperties"]["properties"]
    errors = []
    for cls in [KDConfig, *{loss.params for loss in LOSSES.values()}]:
        types_of = {k: v for k, v in field_types(cls).items() if k != "loss_params"}
        choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(cls)}
        errors += type_errors(f"kd ({cls.__name__})", types_of, choices, properties)
    # KDFlow keys: the released scripts' values have the schema's type
    for name, value in {**kdflow.SCRIPT_FLAGS, **kdflow.DSKD_FLAGS}.items():
        prop = properties[name]
        declared = {JSON_TYPE[type(v)] for v in prop["enum"]} if "enum" in prop else {prop["type"]}
        if JSON_TYPE[type(value)] not in declared | ({"integer"} if "number" in declared else set()):
            errors.append(f"kd.{name}: schema {sorted(declared)}, KDFlow script value {value!r}")
    assert sorted(set(errors)) == []
