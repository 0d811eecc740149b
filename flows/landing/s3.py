"""Landing in S3 through prefect-aws (`S3Bucket` with `AwsCredentials`).

Credentials and region come from the standard AWS environment and profiles (or a saved S3Bucket block);
`AWS_ENDPOINT_URL` selects a non-default endpoint, as boto3 itself does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from botocore.exceptions import ClientError
from prefect_aws import AwsCredentials, S3Bucket
from prefect_aws.client_parameters import AwsClientParameters

from flows.settings import PipelineSettings

# How long a link in a Prefect artifact to a page in the bucket stays valid: S3's longest for a signature.
PRESIGNED_LINK_S = 7 * 24 * 3600


class S3LandingStore:
    """Objects under s3://<bucket>/<prefix>/, keys relative to the prefix."""

    def __init__(self, bucket: S3Bucket, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(cls, url: str, settings: PipelineSettings) -> S3LandingStore:
        """Store for s3://bucket/prefix, from a saved block if one is named, else from the AWS environment."""
        parts = urlsplit(url)
        if settings.s3_bucket_block:
            bucket = S3Bucket.load(settings.s3_bucket_block)
            if not isinstance(bucket, S3Bucket):
                raise TypeError(f"block {settings.s3_bucket_block!r} is not an S3Bucket")
        else:
            endpoint = settings.aws_endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
            credentials = AwsCredentials(aws_client_parameters=AwsClientParameters(endpoint_url=endpoint))
            bucket = S3Bucket(bucket_name=parts.netloc, credentials=credentials)
        return cls(bucket, parts.path)

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"landing key {key!r} escapes the landing prefix")
        return f"{self.prefix}/{key}" if self.prefix else key

    @property
    def identity(self) -> str:
        """s3://bucket/prefix."""
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"

    def check_access(self) -> None:
        """Fail early, with the bucket's name, when it cannot be reached."""
        client = self.bucket.credentials.get_s3_client()
        try:
            client.head_bucket(Bucket=self.bucket.bucket_name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise RuntimeError(
                f"cannot use landing bucket {self.bucket.bucket_name!r} (error {code})"
            ) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        """Put an object (S3 writes are atomic per object)."""
        self.bucket.write_path(self._key(key), data)

    def read_bytes(self, key: str) -> bytes:
        """Get an object."""
        return cast(bytes, self.bucket.read_path(self._key(key)))

    def exists(self, key: str) -> bool:
        """Whether the object is there."""
        client = self.bucket.credentials.get_s3_client()
        try:
            client.head_object(Bucket=self.bucket.bucket_name, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def uri(self, key: str) -> str:
        """s3:// URL of the object."""
        return f"s3://{self.bucket.bucket_name}/{self._key(key)}"

    def browser_link(self, location: str, expires_s: int = PRESIGNED_LINK_S) -> str:
        """An https link a browser can open for an s3:// location of this bucket (presigned, it expires)."""
        parts = urlsplit(location)
        client = self.bucket.credentials.get_s3_client()
        return cast(
            str,
            client.generate_presigned_url(
                "get_object",
                Params={"Bucket": parts.netloc, "Key": parts.path.lstrip("/")},
                ExpiresIn=expires_s,
            ),
        )

    def upload_folder(self, folder: Path, key_prefix: str, only_new: bool = False) -> str:
        """Upload every file under `folder` to <prefix>/<key_prefix>/... (with `only_new`, only those not
        there yet); return the folder's s3:// URL."""
        present = self._keys_under(key_prefix) if only_new else set()
        for path in sorted(folder.rglob("*")):
            key = f"{key_prefix}/{path.relative_to(folder).as_posix()}"
            if path.is_file() and self._key(key) not in present:
                self.write_bytes(key, path.read_bytes())
        return self.uri(key_prefix)

    def _keys_under(self, key_prefix: str) -> set[str]:
        """The full keys of the objects under <prefix>/<key_prefix>/ (one listing, paged)."""
        client = self.bucket.credentials.get_s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket.bucket_name, Prefix=f"{self._key(key_prefix)}/"
        )
        return {item["Key"] for page in pages for item in page.get("Contents", [])}
