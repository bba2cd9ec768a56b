"""Which ``OR_MIDDLEWARE_*`` variable names mean something, derived from the settings classes.

A misspelled variable (``OR_MIDDLEWARE_OTLP__ENDPONT``) would otherwise be ignored without a
word and leave a default in force. The valid names are read from the classes themselves, so
a field another module adds (a new setting, a new destination preset) is known at once:

- ``<PREFIX><FIELD>`` for each field of the top-level settings class;
- ``<PREFIX><FIELD>__<SUBFIELD>`` for a field that is itself a settings model (``SECURITY__…``);
- ``<PREFIX><DESTINATION>__<FIELD>`` for each preset kind, also labelled (``OTLP_TEMPO__…``),
  whether or not that destination is enabled (one env file may configure several).

Nothing here imports the settings module: it hands us the classes (no import cycle).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping

from pydantic import AliasChoices, BaseModel

# Read by an or-middleware command, not by the middleware's settings (an app may share the environment).
COMMAND_VARIABLES = frozenset({"UI_TOKEN"})  # or-middleware ui: the token it requires


def _env_names(model: type[BaseModel]) -> set[str]:
    """The upper-case field names, plus any string alias (pydantic-settings reads an alias as is)."""
    names = set()
    for field, info in model.model_fields.items():
        names.add(field.upper())
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(f"@{c.upper()}" for c in choices if isinstance(c, str))  # '@': a full name
    return names


def _nested_models(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    nested = {}
    for field, info in model.model_fields.items():
        annotation = info.annotation
        if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
            nested[field.upper()] = annotation
    return nested


def unknown_variables(
    environ: Mapping[str, str],
    prefix: str,
    settings: type[BaseModel],
    presets: Mapping[str, type[BaseModel]],
    preset_for_name: Callable[[str], type[BaseModel]],
) -> list[str]:
    """One message per ``prefix*`` variable that names no setting, with the closest valid name."""
    top = _env_names(settings)
    nested = _nested_models(settings)
    full_aliases = {name[1:] for name in top if name.startswith("@")}
    problems = []
    every_name: list[str] | None = None  # built once, only when needed
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(prefix) or name in full_aliases or name[len(prefix):] in COMMAND_VARIABLES:
            continue
        rest = name[len(prefix):]
        head, sep, tail = rest.partition("__")
        if not sep:
            if rest in top:
                continue
            candidates: Iterable[str] = [n for n in top if not n.startswith("@")]
        elif head in nested:
            if tail in _env_names(nested[head]):
                continue
            candidates = [f"{head}__{n}" for n in _env_names(nested[head])]
        else:
            try:
                preset = preset_for_name(head)
            except ValueError:
                preset = None
            if preset is not None:
                fields = _env_names(preset)
                if tail in fields:
                    continue
                candidates = [f"{head}__{n}" for n in fields]
            else:  # not a destination name: the closest destination variable, or a top-level one
                if every_name is None:
                    every_name = [n for n in top if not n.startswith("@")]
                    every_name += [f"{kind.upper()}__{n}" for kind, cls in presets.items() for n in _env_names(cls)]
                candidates = every_name
        candidates = [c for c in candidates if "@" not in c]
        # a name far longer than any setting's has no close match (and difflib is quadratic)
        close = difflib.get_close_matches(rest, candidates, n=1, cutoff=0.6) if len(rest) <= 100 else []
        hint = f"; did you mean {prefix}{close[0]}?" if close else ""
        shown = variable if len(variable) <= 120 else variable[:120] + "..."
        problems.append(f"{shown} names no setting{hint}")
    return problems
