"""``crm settings show``: the effective settings, secrets masked, and where each came from."""

from __future__ import annotations

import os
import tomllib
from typing import Any

import typer

from adapters.cli.options import Format, OutputFormat, Store, load_settings
from adapters.cli.render import Section, render
from crm_domain.settings import CONFIG_ENV, config_file

settings_app = typer.Typer(
    name="settings", help="Show the settings every command uses.", no_args_is_help=True
)


def _flatten(values: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    flat: dict[tuple[str, ...], Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "topics":
            flat.update(_flatten(value, (*prefix, key)))
        else:
            flat[(*prefix, key)] = value
    return flat


def _lookup(values: dict[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _origin(path: tuple[str, ...], given: set[str], toml: dict[str, Any], name: str) -> str:
    env = "CRM_" + "__".join(path).upper()
    if path[0] in given:
        return "command line"
    if env in {k.upper() for k in os.environ} or any(
        k.upper().startswith(env + "__") for k in os.environ
    ):
        return f"${env}"
    if _lookup(toml, path):
        return name
    return "default"


@settings_app.command("show")
def show(store: Store = None, fmt: Format = OutputFormat.TABLE) -> None:
    """Print the effective settings (secrets masked) and where each came from."""
    settings = load_settings(store)
    path = config_file()
    toml: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as f:
            toml = tomllib.load(f)
    name = f"{path} (${CONFIG_ENV})" if os.environ.get(CONFIG_ENV) else str(path)
    given = {"store_url"} if store is not None else set()
    table = Section("Settings", ("setting", "value", "from"))
    for key, value in _flatten(settings.model_dump(mode="json")).items():
        if key == ("store_url",):
            value = settings.store.display
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        if isinstance(shown, dict):
            shown = ", ".join(f"{k}={v}" for k, v in sorted(shown.items())) or "-"
        table.add(
            ".".join(key), "-" if shown is None else str(shown), _origin(key, given, toml, name)
        )
    render([table], fmt)
