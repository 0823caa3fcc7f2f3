"""``yoloswap train --config FILE``: training options from a YAML file, command-line flags on top.

The file's keys are :class:`~yoloswap.config.options.TrainOptions` field names (``augment:`` nested, as in a
run's ``config.yaml``); a run's own ``config.yaml`` is accepted as it is (its ``options:`` section is used), so
``--config runs/train/exp/config.yaml`` reruns that run.

The file fills click's ``default_map`` before any other option is read (``--config`` is an eager option), so
click's own precedence does the merging: a flag the user typed (``ParameterSource.COMMANDLINE``) beats the file,
the file beats the command's defaults. The command's body cannot tell a value from the file from a typed one, so
every rule it applies (defaults that depend on ``--data``, ``check()``) applies to both alike.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer
import yaml

from yoloswap.errors import ConfigError, suggestion


def option_fields() -> tuple[list[str], list[str]]:
    """(TrainOptions field names, AugmentConfig field names): the keys a config file may use."""
    from yoloswap.data.transforms import AugmentConfig
    from yoloswap.config.options import TrainOptions

    return [f.name for f in dataclasses.fields(TrainOptions)], [f.name for f in dataclasses.fields(AugmentConfig)]


def read_train_config(path: Path) -> dict[str, Any]:
    """The file's options as a flat ``{field: value}`` (augment keys lifted to the top); unknown keys are refused
    with the closest valid name."""
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping of training options, got {type(doc).__name__}")
    if isinstance(doc.get("options"), dict) and "preset" in doc:  # a run's config.yaml: replay its options
        doc = doc["options"]
    fields, augment_fields = option_fields()
    values: dict[str, Any] = {}
    for key, value in doc.items():
        if key == "augment":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: field 'augment' must be a mapping of {', '.join(augment_fields)}")
            for sub, sub_value in value.items():
                if sub not in augment_fields:
                    raise ConfigError(f"{path}: unknown field 'augment.{sub}'{suggestion(str(sub), augment_fields)}")
                values[sub] = sub_value
        elif key in fields or key in augment_fields:  # augmentation also flat, as its flags are (--mosaic)
            values[key] = value
        else:
            raise ConfigError(f"{path}: unknown field '{key}'{suggestion(str(key), fields + augment_fields)}")
    return values


def command_defaults(command, values: dict[str, Any], path: Path, ctx=None) -> dict[str, Any]:
    """``values`` as the ``default_map`` of ``command``: option names keyed by parameter name, each value checked
    by the option's own type (so a bad value names the file and field, not a flag the user never typed).

    A field maps to the option spelled ``--field-name`` (``time`` → ``--time``, ``ema`` → ``--ema/--no-ema``).
    ``None`` leaves the command's default, which for every optional field means the same thing."""
    by_flag = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("--")}
    defaults: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        param = by_flag.get("--" + key.replace("_", "-"))
        if param is None:
            raise ConfigError(f"{path}: field '{key}' cannot be set for `{command.name}`")
        if key == "neck_width" and isinstance(value, (list, tuple)):  # the CLI spells three widths c3,c4,c5
            value = ",".join(str(v) for v in value)
        elif key == "neck_width":
            value = str(value)
        try:
            param.process_value(ctx, value)
        except Exception as exc:  # click's BadParameter: re-say it about the file
            message = getattr(exc, "message", None) or str(exc)
            raise ConfigError(f"{path}: field '{key}': {message}") from None
        defaults[param.name] = value
    return defaults


def apply_config_file(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Callback of the eager ``--config`` option: load the file into ``ctx.default_map``."""
    if value is None:
        return value
    path = Path(value)
    defaults = command_defaults(ctx.command, read_train_config(path), path, ctx)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value
