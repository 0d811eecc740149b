"""The run parameters are declared once: CLI options, the flow's signature and the settings follow it."""

from __future__ import annotations

import inspect
from datetime import date

import pytest

from flows.cli import build_parser, flow_arguments
from flows.parameters import PARAMETER_NAMES, RunDefaults, RunParameters, resolve_parameters
from flows.settings import PipelineSettings


def _run_options() -> dict[str, str]:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    return {
        action.option_strings[0]: action.dest for action in run._actions if action.option_strings[0] != "-h"
    }


def test_every_parameter_is_a_cli_option_and_nothing_else_is() -> None:
    options = _run_options()
    presentation = {"log_format"}  # how the run shows itself (--log-format, --verbose): not a parameter
    assert set(options.values()) - presentation == set(PARAMETER_NAMES)
    for name in PARAMETER_NAMES:
        assert options["--" + name.replace("_", "-")] == name


def test_the_old_batch_size_option_is_an_alias_of_the_page_size() -> None:
    args = build_parser().parse_args(["run", "--batch-size", "250"])
    assert args.page_size == 250


def test_the_flow_signature_is_the_declaration() -> None:
    from flows.run.pipeline import persons_pipeline

    signature = inspect.signature(persons_pipeline.fn)
    assert tuple(signature.parameters) == PARAMETER_NAMES
    schema = persons_pipeline.parameters.model_dump()
    assert set(schema["properties"]) == set(PARAMETER_NAMES)
    # Every parameter in the run form and the API's check: its type, default, help and bounds.
    for name, declared in RunParameters.model_fields.items():
        shown = schema["properties"][name]
        assert shown["description"].startswith(declared.description or "-"), name
        assert "default" in shown, name
    total = schema["properties"]["total"]
    bounds = (total["type"], total["default"], total["minimum"], total["maximum"])
    assert bounds == ("integer", 30_000, 1, 10**8)
    assert schema["properties"]["locale"]["pattern"] == RunDefaults.model_fields["locale"].metadata[0].pattern
    warehouse = schema["properties"]["warehouse"]
    assert warehouse["anyOf"][0]["enum"] == ["duckdb", "snowflake"] and warehouse["default"] is None
    assert "the worker's PERSONS_WAREHOUSE" in warehouse["description"]
    assert schema["properties"]["window"]["anyOf"][0]["pattern"].startswith("^(daily:")


def test_every_configurable_default_is_a_setting_with_the_same_bounds() -> None:
    for name, declared in RunDefaults.model_fields.items():
        setting = PipelineSettings.model_fields[name]
        assert setting.annotation == declared.annotation
        assert setting.metadata == declared.metadata
        assert setting.description == declared.description


def test_bounds_hold_for_the_setting_and_the_parameter_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONS_PAGE_SIZE", "1001")
    with pytest.raises(ValueError, match="page_size"):
        PipelineSettings()
    with pytest.raises(ValueError, match="--page-size"):
        resolve_parameters(PipelineSettings(_env_file=None, page_size=10), page_size=1001)


def test_flow_arguments_round_trip_through_the_declaration() -> None:
    params = resolve_parameters(RunDefaults(), total=7, reference_date=date(2026, 1, 2))
    again = RunParameters.parse(**flow_arguments(params))
    assert again == params
