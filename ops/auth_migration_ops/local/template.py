"""Reads template.yaml the way SAM would for one function: CloudFormation short tags, Globals merged,
intrinsics resolved against parameter overrides and locally provided resource values (e.g. moto URLs)."""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "FunctionSpec",
    "IntrinsicResolver",
    "list_functions",
    "load_template",
    "resolve_function",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TEMPLATE_PATH = REPO_ROOT / "template.yaml"

_FUNCTION_TYPE = "AWS::Serverless::Function"
_LAYER_TYPE = "AWS::Serverless::LayerVersion"
_FUNCTION_SUFFIX = "Function"
# What a deployed stack would see; locally there is no account, so SAM's own placeholder account is used.
_LOCAL_ACCOUNT_ID = "123456789012"
_SUB_VARIABLE = re.compile(r"\$\{(!?)([^}]*)\}")
_NO_VALUE = object()


# libyaml's loader parses the template several times faster; the pure-Python one is the fallback.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CloudFormationLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """Safe loader that turns `!Ref X` into {"Ref": X}, `!Sub s` into {"Fn::Sub": s}, and so on."""


def _construct_tagged(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag_suffix}", node.start_mark)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    # The short form `!GetAtt Res.Attr` is a string; the long form is a two-item list.
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_tagged)


def load_template(template_path: Path | None = None) -> dict[str, Any]:
    """Parse a CloudFormation/SAM template, short intrinsic tags included, into plain dicts.

    Parsed once per file version (path + mtime); every caller gets its own copy to change freely.
    """
    path = (template_path or DEFAULT_TEMPLATE_PATH).resolve()
    return copy.deepcopy(_parse(path, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=16)
def _parse(path: Path, _mtime_ns: int) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        document = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - safe loader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a CloudFormation template (top level is not a mapping)")
    return document


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to run one function locally, resolved from the template."""

    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: int
    memory_mb: int
    layer_dirs: list[Path] = field(default_factory=list)
    #: The Lambda runtime ("python3.13"): AWS_EXECUTION_ENV says it to the code, as in AWS.
    runtime: str = "python3.13"


class IntrinsicResolver:
    """Evaluates CloudFormation intrinsic functions for a local run.

    `Ref` to a parameter gives its override or Default; `Ref`/`GetAtt` to a resource gives
    `resource_values[LogicalId]` / `resource_values["LogicalId.Attribute"]`, or "" when the caller did not
    provide one (the resource does not exist locally).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameter_overrides: Mapping[str, str] | None = None,
        resource_values: Mapping[str, str] | None = None,
        region: str | None = None,
    ) -> None:
        self._template = template
        self._parameters: Mapping[str, Any] = template.get("Parameters") or {}
        self._resources: Mapping[str, Any] = template.get("Resources") or {}
        self._overrides = dict(parameter_overrides or {})
        self._resource_values = dict(resource_values or {})
        unknown = sorted(set(self._overrides) - set(self._parameters))
        if unknown:
            raise KeyError(f"unknown template parameter(s) {unknown}; known: {sorted(self._parameters)}")
        self._region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        stage = self._overrides.get("Stage") or str(self._parameters.get("Stage", {}).get("Default", "local"))
        self._pseudo = {
            "AWS::Region": self._region,
            "AWS::AccountId": _LOCAL_ACCOUNT_ID,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"auth-migration-{stage}",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self._region}:{_LOCAL_ACCOUNT_ID}:stack/auth-migration-{stage}/local"
            ),
            "AWS::NotificationARNs": "",
        }

    @property
    def region(self) -> str:
        return self._region

    def parameter(self, name: str) -> str:
        if name in self._overrides:
            return self._overrides[name]
        definition = self._parameters[name]
        if "Default" not in definition:
            raise KeyError(f"template parameter {name!r} has no Default; pass it in parameter_overrides")
        return _scalar_to_str(definition["Default"])

    def condition(self, name: str) -> bool:
        conditions: Mapping[str, Any] = self._template.get("Conditions") or {}
        if name not in conditions:
            raise KeyError(f"unknown condition {name!r}; known: {sorted(conditions)}")
        return bool(self.resolve(conditions[name]))

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsics recursively; AWS::NoValue drops the key or list item it sits in."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self._ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._parameters:
            return self.parameter(name)
        if name in self._resources:
            return self._resource_values.get(name, "")
        raise KeyError(f"!Ref {name}: neither a parameter, a pseudo parameter nor a resource of the template")

    def _function(self, name: str, argument: Any) -> Any:
        if name == "GetAtt":
            resource, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else [self.resolve(a) for a in argument]
            )
            if resource not in self._resources:
                raise KeyError(f"!GetAtt {resource}.{attribute}: no such resource")
            return self._resource_values.get(f"{resource}.{attribute}", "")
        if name == "Sub":
            return self._sub(argument)
        if name == "Join":
            delimiter, items = argument
            return str(delimiter).join(_scalar_to_str(item) for item in self.resolve(items))
        if name == "Select":
            index, items = self.resolve(argument)
            return items[int(index)]
        if name == "Split":
            delimiter, text = self.resolve(argument)
            return str(text).split(str(delimiter))
        if name == "If":
            condition_name, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition_name) else when_false)
        if name == "Equals":
            left, right = self.resolve(argument)
            return _scalar_to_str(left) == _scalar_to_str(right)
        if name == "Not":
            (inner,) = argument
            return not self.resolve(inner)
        if name == "And":
            return all(self.resolve(item) for item in argument)
        if name == "Or":
            return any(self.resolve(item) for item in argument)
        if name == "FindInMap":
            map_name, top_key, second_key = self.resolve(argument)
            return self._template["Mappings"][map_name][top_key][second_key]
        if name == "GetAZs":
            return [f"{self._region}{zone}" for zone in "abc"]
        if name == "Base64":
            return self.resolve(argument)
        raise ValueError(f"intrinsic Fn::{name} is not supported by the local resolver")

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}

        def replace(match: re.Match[str]) -> str:
            if match.group(1):  # ${!Literal} is CloudFormation's escape for a literal ${Literal}
                return "${" + match.group(2) + "}"
            name = match.group(2).strip()
            if name in variables:
                return _scalar_to_str(variables[name])
            if "." in name and name.split(".", 1)[0] in self._resources:
                return _scalar_to_str(self._function("GetAtt", name))
            return _scalar_to_str(self._ref(name))

        return _SUB_VARIABLE.sub(replace, str(text))


def _scalar_to_str(value: Any) -> str:
    # CloudFormation passes every environment value as a string; YAML booleans become "true"/"false".
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _functions(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    resources: Mapping[str, Any] = template.get("Resources") or {}
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if isinstance(resource, Mapping) and resource.get("Type") == _FUNCTION_TYPE
    }


def list_functions(template_path: Path | None = None) -> list[str]:
    """Logical ids of every AWS::Serverless::Function in the template, sorted."""
    return sorted(_functions(load_template(template_path)))


def _find_function(name: str, functions: Mapping[str, Mapping[str, Any]]) -> str:
    for candidate in (name, f"{name}{_FUNCTION_SUFFIX}"):
        if candidate in functions:
            return candidate
    raise KeyError(f"no function {name!r} in the template; known: {', '.join(sorted(functions)) or 'none'}")


def resolve_function(
    name: str,
    *,
    template_path: Path | None = None,
    parameter_overrides: Mapping[str, str] | None = None,
    resource_values: Mapping[str, str] | None = None,
) -> FunctionSpec:
    """Resolve one function's runtime view: code dir, handler, merged environment, limits, layer dirs.

    `name` is the logical id ("MigrateBatchFunction") or its short form ("MigrateBatch").

    Raises:
        KeyError: unknown function (the message lists the known ones) or unknown parameter override.
    """
    path = (template_path or DEFAULT_TEMPLATE_PATH).resolve()
    template = load_template(path)
    functions = _functions(template)
    logical_id = _find_function(name, functions)
    resolver = IntrinsicResolver(template, parameter_overrides=parameter_overrides, resource_values=resource_values)

    globals_ = resolver.resolve((template.get("Globals") or {}).get("Function") or {})
    properties = resolver.resolve(functions[logical_id].get("Properties") or {})

    environment = {
        key: _scalar_to_str(value)
        for source in (globals_, properties)
        for key, value in ((source.get("Environment") or {}).get("Variables") or {}).items()
    }
    # SAM appends a function's own Layers after the global ones. Layers are read unresolved: only a !Ref
    # to a layer built from this template has a local directory; ARNs of foreign layers mean nothing here.
    raw_globals = (template.get("Globals") or {}).get("Function") or {}
    raw_layers = [
        *(raw_globals.get("Layers") or []),
        *((functions[logical_id].get("Properties") or {}).get("Layers") or []),
    ]
    base_dir = path.parent
    layer_dirs = _layer_dirs(template, raw_layers, base_dir)

    code_uri = properties.get("CodeUri", globals_.get("CodeUri"))
    if not isinstance(code_uri, str):
        raise ValueError(f"{logical_id}: CodeUri must be a local directory, got {code_uri!r}")
    handler = properties.get("Handler", globals_.get("Handler"))
    if not isinstance(handler, str) or "." not in handler:
        raise ValueError(f"{logical_id}: Handler must look like 'module.function', got {handler!r}")

    return FunctionSpec(
        logical_id=logical_id,
        code_dir=(base_dir / code_uri).resolve(),
        handler=handler,
        environment=environment,
        timeout=int(properties.get("Timeout", globals_.get("Timeout", 3))),
        memory_mb=int(properties.get("MemorySize", globals_.get("MemorySize", 128))),
        layer_dirs=layer_dirs,
        runtime=str(properties.get("Runtime", globals_.get("Runtime", "python3.13"))),
    )


def _layer_dirs(template: Mapping[str, Any], raw_layers: list[Any], base_dir: Path) -> list[Path]:
    resources: Mapping[str, Any] = template.get("Resources") or {}
    directories: list[Path] = []
    for layer in raw_layers:
        if not (isinstance(layer, Mapping) and set(layer) == {"Ref"}):
            continue
        resource = resources.get(layer["Ref"])
        if not isinstance(resource, Mapping) or resource.get("Type") != _LAYER_TYPE:
            continue
        content_uri = (resource.get("Properties") or {}).get("ContentUri")
        if isinstance(content_uri, str):
            directories.append((base_dir / content_uri).resolve())
    return directories
