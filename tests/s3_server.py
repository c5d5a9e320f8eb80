"""A real S3 HTTP endpoint for tests: moto's server on 127.0.0.1, spoken to as to any S3."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from uuid import uuid4

from moto.server import ThreadedMotoServer

from tests.dagster_home import free_port

# moto accepts any credentials; boto3 and ffmpeg sign with these as they would with real ones.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "heimdex-test",
    "AWS_SECRET_ACCESS_KEY": "heimdex-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Endpoint:
    """A running S3 endpoint and the environment a client needs to reach it."""

    url: str

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The `HEIMDEX_*` and AWS variables of a Heimdex that stores in `bucket` on this endpoint."""
        return {**CREDENTIALS, "HEIMDEX_STORAGE": "s3", "HEIMDEX_S3_BUCKET": bucket,
                "HEIMDEX_S3_ENDPOINT_URL": self.url, "HEIMDEX_S3_PREFIX": prefix}

    def client(self):  # noqa: ANN201 (boto3's client type is generated)
        import boto3

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                            region_name=CREDENTIALS["AWS_DEFAULT_REGION"])

    def new_bucket(self) -> str:
        """A fresh empty bucket."""
        name = f"heimdex-{uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def s3_endpoint() -> Iterator[S3Endpoint]:
    """Start moto's S3 server on a free port of 127.0.0.1 and stop it on exit."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    # The AWS chain of every client in this process (and its children) finds these.
    os.environ.update(CREDENTIALS)
    try:
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
