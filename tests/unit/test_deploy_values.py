"""make deploy's values (the environment file, overlaid by the stack's outputs, overlaid by the caller), and
what it prints: few lines, in words, a failed step's cause."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import PrefectHTTPStatusError

from deployments.deploy import (
    StepFailed,
    deploy_values,
    environment_values,
    models_summary,
    read_env_file,
    run_logged,
    twin_address,
    wrapped,
)
from deployments.infra.config import ENVIRONMENTS, OUTPUT_VARIABLES
from deployments.infra.deploy_stacks import write_env_file
from deployments.prefect_api import automation_names, declared_deployments, describe_schedule, refusal
from flows.parameters import DEFAULT_API_URL
from tests.conftest import REPO


def test_stack_outputs_override_the_environment_file_and_the_caller_overrides_both(tmp_path: Path) -> None:
    (tmp_path / "dev.env").write_text(
        "# dev\nPERSONS_ECS_CLUSTER=placeholder\nPERSONS_WORK_POOL=persons-ecs-dev\n"
    )
    assert environment_values("dev", {}, tmp_path)["PERSONS_ECS_CLUSTER"] == "placeholder"

    write_env_file(tmp_path / "dev.stack.env", "persons-pipeline-dev", {"PERSONS_ECS_CLUSTER": "persons-dev"})

    assert environment_values("dev", {}, tmp_path) == {
        "PERSONS_ECS_CLUSTER": "persons-dev",
        "PERSONS_WORK_POOL": "persons-ecs-dev",
    }
    caller = {"PERSONS_ECS_CLUSTER": "one-off", "UNRELATED": "x"}
    assert environment_values("dev", caller, tmp_path)["PERSONS_ECS_CLUSTER"] == "one-off"


def test_every_stack_output_has_a_place_in_each_aws_environment_file() -> None:
    for env in ("dev", "prod"):
        values = read_env_file(REPO / "deployments" / "environments" / f"{env}.env")
        assert set(OUTPUT_VARIABLES.values()) <= set(values), env
        assert not values["PERSONS_HMAC_SECRET_BLOCK"]  # the key comes from Secrets Manager on AWS
        assert values["PERSONS_HMAC_SECRET_AWS_SECRET"] == ENVIRONMENTS[env].hmac_secret_name


def test_local_deployments_use_the_twin_with_paused_schedules_and_aws_ones_the_public_api() -> None:
    local = deploy_values("local", {})
    assert twin_address(local["PERSONS_API_URL"]) == ("127.0.0.1", 4210)  # the twin make worker starts
    assert local["PERSONS_SCHEDULES_ACTIVE"] == "false"
    assert local["PERSONS_PROJECT_DIR"] == str(REPO)
    for env in ("dev", "prod"):
        values = deploy_values(env, {})
        assert values["PERSONS_API_URL"] == DEFAULT_API_URL and twin_address(DEFAULT_API_URL) is None
        assert values["PERSONS_SCHEDULES_ACTIVE"] == "true"
    assert deploy_values("local", {"PERSONS_SCHEDULES_ACTIVE": "true"})["PERSONS_SCHEDULES_ACTIVE"] == "true"


def test_every_value_prefect_yaml_reads_is_in_every_environment_file() -> None:
    text = "\n".join(line.split("#")[0] for line in (REPO / "prefect.yaml").read_text().splitlines())
    read = set(re.findall(r"\{\{ \$(\w+) \}\}", text))
    assert "PERSONS_API_URL" in read and "PERSONS_SCHEDULES_ACTIVE" in read
    for env in ("local", "dev", "prod"):
        assert read <= set(read_env_file(REPO / "deployments" / "environments" / f"{env}.env")), env


def test_the_project_declares_its_deployments_and_automations_by_name() -> None:
    names = [name for name, _ in declared_deployments()]
    assert names == ["daily", "backfill", "shard", "build", "adhoc", "forget"]
    assert automation_names() == ["persons-freshness", "persons-run-failed", "persons-threshold-breach"]


def test_lines_are_wrapped_between_items_never_inside_one() -> None:
    items = [f"persons-flow-{number}/deployment-{number}" for number in range(12)]
    lines = wrapped("deployments (12 created)", items, width=80)
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("  deployments (12 created): ") and lines[1].startswith("    persons-flow-")
    assert ", ".join(items) == " ".join(line.strip() for line in lines).split(": ", 1)[1]


def test_a_models_build_is_told_in_words() -> None:
    built = "x\nmodels: {'built': True, 'fingerprint': 'ab', 'seconds': 10.8312, 'docs': '/d/index.html'}\n"
    assert models_summary(built) == "built in 10.8 s; docs: /d/index.html"
    assert models_summary("models: {'built': False, 'fingerprint': 'ab'}") == (
        "current (unchanged since their last build)"
    )
    assert models_summary("models: built 20 models, 59 tests\n") == "built 20 models, 59 tests"


def test_schedules_are_described_in_words() -> None:
    assert describe_schedule(CronSchedule(cron="30 5 * * *", timezone="Europe/Berlin")) == (
        "daily at 05:30 Europe/Berlin"
    )
    assert describe_schedule(CronSchedule(cron="0 6 * * 1")) == "0 6 * * 1 UTC"


def test_a_failed_step_keeps_its_output_in_the_log_and_shows_its_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "deploy.log"
    log.write_text("header\n")
    border = "print('\\u256d\\u2500\\u256e', flush=True)"  # a box's border, as the Prefect CLI draws
    script = f"[print(f'line {{n}}', flush=True) for n in range(12)]; {border}; raise SystemExit('cause')"
    with pytest.raises(StepFailed) as failed:
        run_logged("prefect deploy --all", [sys.executable, "-c", script], {}, log)
    assert str(failed.value) == "prefect deploy --all failed (exit 1); its last lines:"
    assert failed.value.tail == [*(f"line {n}" for n in range(5, 12)), "cause"]
    assert "line 0" in log.read_text() and log.read_text().startswith("header\n")


def test_an_api_refusal_is_one_line_with_the_servers_detail() -> None:
    request = httpx.Request("POST", "http://127.0.0.1:4200/api/work_pools/")
    response = httpx.Response(
        409, json={"detail": "A work pool with this name already exists."}, request=request
    )
    error = PrefectHTTPStatusError.from_httpx_error(
        httpx.HTTPStatusError("", request=request, response=response)
    )
    assert refusal(error) == "POST /api/work_pools/: 409 A work pool with this name already exists."
