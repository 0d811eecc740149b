"""make deploy's values: the environment file, overlaid by the stack's outputs, overlaid by the caller."""

from __future__ import annotations

from pathlib import Path

from deployments.deploy import environment_values, read_env_file
from deployments.infra.config import ENVIRONMENTS, OUTPUT_VARIABLES
from deployments.infra.deploy_stacks import write_env_file
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
