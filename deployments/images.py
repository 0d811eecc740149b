"""The image's way from the build to dev's and prod's ECR repositories (the deploy workflow's steps).

    images.py push --env dev --tag <sha>          buildah push the built image as <dev repository>:<sha>
    images.py mark-passed --env dev --tag <sha>   after dev's smoke run: tag that image passed-<sha> too
    images.py passed-digest --tag <sha> [--login]          the digest dev passed (fails if none)
    images.py promote --env prod --tag <sha> --digest <d>  copy that digest to prod's repository as <sha>

Repositories come from the stacks' outputs (deployments/environments/<env>.stack.env, `make infra-outputs`);
tags are immutable, so a tag names one digest forever, and prod only ever receives a digest dev passed.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deployments.deploy import read_env_file
from deployments.infra.deploy_stacks import stack_outputs_file

LOCAL_IMAGE = "localhost/persons-pipeline:latest"  # what `make image` builds (scripts/image.sh)
PASSED_PREFIX = "passed-"


def repository_uri(env: str) -> str:
    """<account>.dkr.ecr.<region>.amazonaws.com/<repository> of the environment's stack."""
    outputs = stack_outputs_file(env)
    if not outputs.is_file():
        raise SystemExit(f"images: {outputs} is missing; run make infra-outputs ENV={env}")
    return read_env_file(outputs)["PERSONS_IMAGE"].rsplit(":", 1)[0]


def ecr_client() -> Any:
    """boto3's ECR client on the standard AWS environment."""
    import boto3  # noqa: PLC0415

    return boto3.client("ecr")


def login(registry: str, tool: str = "buildah") -> None:
    """Log buildah/skopeo in to an ECR registry with a 12-hour token (never printed)."""
    token = ecr_client().get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    subprocess.run(  # noqa: S603 - fixed tools, arguments from the stack outputs
        [tool, "login", "--username", "AWS", "--password-stdin", registry],
        input=password,
        text=True,
        check=True,
    )


def digest_of(client: Any, repository: str, tag: str) -> str | None:
    """The digest a tag names in a repository, or None."""
    try:
        images = client.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
    except client.exceptions.ImageNotFoundException:
        return None
    details = images.get("imageDetails", [])
    return str(details[0]["imageDigest"]) if details else None


def mark_passed(client: Any, repository: str, tag: str) -> str:
    """Add the tag passed-<tag> to the image <tag> (same manifest, so the same digest); returns the digest."""
    image = client.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": tag}])["images"][0]
    passed = f"{PASSED_PREFIX}{tag}"
    if digest_of(client, repository, passed) is None:
        client.put_image(
            repositoryName=repository,
            imageManifest=image["imageManifest"],
            imageManifestMediaType=image.get("imageManifestMediaType", ""),
            imageTag=passed,
        )
    digest = digest_of(client, repository, passed)
    if digest != image["imageId"]["imageDigest"]:
        raise SystemExit(f"images: {passed} names another image than {tag}")
    return digest


def passed_digest(client: Any, repository: str, tag: str) -> str:
    """The digest dev passed for this commit; fails if dev never passed it."""
    digest = digest_of(client, repository, f"{PASSED_PREFIX}{tag}")
    if digest is None:
        raise SystemExit(
            f"images: commit {tag} has not passed dev ({repository} has no {PASSED_PREFIX}{tag})"
        )
    return digest


def main(argv: Sequence[str] | None = None) -> int:
    """The subcommands above."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["push", "mark-passed", "passed-digest", "promote"])
    parser.add_argument("--env", default="dev", choices=["dev", "prod"])
    parser.add_argument("--tag", required=True, help="the commit SHA")
    parser.add_argument("--digest", help="promote: the digest passed-digest printed")
    parser.add_argument("--login", action="store_true", help="passed-digest: also log skopeo in to dev")
    args = parser.parse_args(argv)
    repository = repository_uri("dev" if args.command in {"passed-digest"} else args.env)
    registry, name = repository.split("/", 1)
    if args.command == "push":
        login(registry)
        target = f"docker://{repository}:{args.tag}"
        subprocess.run(["buildah", "push", LOCAL_IMAGE, target], check=True)  # noqa: S603, S607
        print(f"images: pushed {repository}:{args.tag}")
    elif args.command == "mark-passed":
        print(f"images: {name}:{PASSED_PREFIX}{args.tag} = {mark_passed(ecr_client(), name, args.tag)}")
    elif args.command == "passed-digest":
        digest = passed_digest(ecr_client(), name, args.tag)
        if args.login:
            login(registry, tool="skopeo")
        print(digest)
    else:  # promote, with prod's credentials, after passed-digest --login (dev's) in the same job
        if not args.digest:
            parser.error("promote needs --digest")
        source = repository_uri("dev")
        login(registry, tool="skopeo")
        subprocess.run(  # noqa: S603
            ["skopeo", "copy", "--preserve-digests", f"docker://{source}@{args.digest}",  # noqa: S607
             f"docker://{repository}:{args.tag}"],
            check=True,
        )  # fmt: skip
        copied = digest_of(ecr_client(), name, args.tag)
        if copied != args.digest:
            raise SystemExit(f"images: prod's {args.tag} is {copied}, not the digest dev passed")
        print(f"images: promoted {args.digest} to {repository}:{args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
