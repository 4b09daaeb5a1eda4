"""Settings by concern: each process loads its parts, one default per setting, the brand is configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tandem.settings import (
    ActionSettings,
    BrandSettings,
    CliSettings,
    GatewayAppSettings,
    load_action_settings,
    load_cli_settings,
    load_gateway_settings,
)
from tandem.settings.base import SettingsPart


def _parts(settings: object) -> list[type[SettingsPart]]:
    return [type(getattr(settings, name)) for name in settings.__dataclass_fields__]  # type: ignore[attr-defined]


def _all_parts(cls: type[SettingsPart] = SettingsPart) -> list[type[SettingsPart]]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_all_parts(direct))]


def test_each_environment_variable_is_defined_once() -> None:
    """One source for each default: no variable is a field of two parts (GatewaySettings extends
    TurnSettings, so RASA_TIMEOUT_SECONDS is TurnSettings' field only)."""
    owners: dict[str, set[str]] = {}
    parts = _all_parts()
    assert {"GatewaySettings", "InputSettings", "BrandSettings"} <= {cls.__name__ for cls in parts}
    for cls in parts:
        base = cls.__base__
        inherited = base.environment_names() if isinstance(base, type) and base is not SettingsPart else frozenset()
        for env in cls.environment_names() - inherited:  # type: ignore[attr-defined]
            owners.setdefault(env, set()).add(cls.__name__)
    assert {"MAX_MESSAGE_CHARS", "GATEWAY_MAX_MESSAGE_CHARS", "RASA_TIMEOUT_SECONDS"} <= set(owners)
    assert all(len(names) == 1 for names in owners.values()), {k: v for k, v in owners.items() if len(v) > 1}


def test_the_gateways_production_check_does_not_stop_the_action_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ENV", "production")
    monkeypatch.setenv("GATEWAY_SECRET", "short")
    with pytest.raises(ValidationError, match="GATEWAY_SECRET"):
        load_gateway_settings(_env_file=None)
    # The action server and the command line never read the gateway's settings.
    assert isinstance(load_action_settings(_env_file=None), ActionSettings)
    assert isinstance(load_cli_settings(_env_file=None), CliSettings)


def test_processes_load_only_their_parts() -> None:
    gateway = {cls.__name__ for cls in _parts(load_gateway_settings(_env_file=None))}
    action = {cls.__name__ for cls in _parts(load_action_settings(_env_file=None))}
    cli = {cls.__name__ for cls in _parts(load_cli_settings(_env_file=None))}
    assert "GatewaySettings" in gateway and "GatewaySettings" not in action | cli
    assert {"LlmSettings", "FallbackSettings", "ActionServerSettings"} <= action
    assert not {"LlmSettings", "FallbackSettings", "ActionServerSettings"} & (gateway | cli)


def test_an_override_no_part_reads_is_an_error() -> None:
    with pytest.raises(TypeError, match="DATABASE_ULR"):
        load_action_settings(_env_file=None, DATABASE_ULR="sqlite:///x.db")
    # The gateway does not read the LLM's settings: overriding one there is a mistake too.
    with pytest.raises(TypeError, match="LLM_MODEL"):
        load_gateway_settings(_env_file=None, LLM_MODEL="m")


def test_one_message_cap_for_the_edge_and_the_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_MAX_MESSAGE_CHARS", "700")  # the earlier name still works
    gateway: GatewayAppSettings = load_gateway_settings(_env_file=None)
    action = load_action_settings(_env_file=None)
    assert gateway.input.max_message_chars == action.input.max_message_chars == 700
    monkeypatch.setenv("MAX_MESSAGE_CHARS", "900")
    assert load_action_settings(_env_file=None).input.max_message_chars == 900


def test_the_brand_is_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAND_NAME", "Lanna Wings")
    monkeypatch.setenv("FLIGHT_NUMBER_PREFIX", "lw")
    monkeypatch.setenv("SUPPORT_EMAIL", "help@lanna.example")
    monkeypatch.setenv("SUPPORT_PHONE", "+66 53 000 000")
    monkeypatch.setenv("SUPPORT_URL", "")
    brand = load_action_settings(_env_file=None).brand
    assert (brand.name, brand.flight_prefix) == ("Lanna Wings", "LW")
    assert brand.contacts() == "help@lanna.example or +66 53 000 000"
    for bad in ("A", "ANX", "12", "A-"):
        with pytest.raises(ValidationError, match="FLIGHT_NUMBER_PREFIX"):
            BrandSettings(_env_file=None, FLIGHT_NUMBER_PREFIX=bad)
