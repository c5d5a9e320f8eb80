"""The compose stack of docker-compose.yml on a real Docker engine, as the end-to-end tests drive it:
`scripts/compose-offline.sh` with an env file of generated secrets, and the engine's own API."""

import base64
import json
import os
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import docker
import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "heimdex-e2e"


class Ports(NamedTuple):
    """Where a stack publishes its API, webserver, S3 API and S3 console, on 127.0.0.1."""

    api: int
    dagster: int
    s3: int
    s3_console: int


# Apart from run.sh's defaults (8000, 3000) and MinIO's (9000).
TEST_PORTS = Ports(18000, 13000, 19000, 19001)
RECEIVER = "heimdex-e2e-webhook-receiver"
# Secrets of the API that no other service and no run uses: only the API's container may carry
# them (`docker inspect` shows a container's environment to whoever may use the engine).
API_ONLY_SECRETS = ("HEIMDEX_JWT_SECRET", "HEIMDEX_URL_SIGNING_KEY")
def env_file(path: Path, ports: Ports = TEST_PORTS) -> dict[str, str]:
    """Write `.env` as an operator makes it from deploy/.env.example: every secret generated."""
    generated = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "HEIMDEX_JWT_SECRET": secrets.token_urlsafe(48),
        "HEIMDEX_URL_SIGNING_KEY": secrets.token_urlsafe(48),
        "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24),
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "HEIMDEX_IMAGE_TAG": "e2e",
        "HEIMDEX_PUBLIC_URL": f"http://127.0.0.1:{ports.api}",
        "HEIMDEX_S3_PUBLIC_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        # The tests' webhook receiver is a container of the stack's network: a private address.
        "HEIMDEX_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "HEIMDEX_API_ADDRESS": f"127.0.0.1:{ports.api}",
        "DAGSTER_WEBSERVER_ADDRESS": f"127.0.0.1:{ports.dagster}",
        "MINIO_ADDRESS": f"127.0.0.1:{ports.s3}",
        "MINIO_CONSOLE_ADDRESS": f"127.0.0.1:{ports.s3_console}",
    }
    text = (REPO_ROOT / "deploy" / ".env.example").read_text()
    for name, value in generated.items():
        text, count = re.subn(rf"^{name}=.*$", f"{name}={value}", text, flags=re.M)
        assert count == 1, f"deploy/.env.example has no {name}="
    path.write_text(text)
    path.chmod(0o600)
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


@dataclass
class Stack:
    """One compose project of docker-compose.yml, run by scripts/compose-offline.sh, reached on the
    addresses its .env publishes."""

    env_path: Path
    env: dict[str, str]
    project: str = PROJECT

    def compose(self, *args: str, check: bool = True, timeout_s: float = 900) -> subprocess.CompletedProcess:
        # Only what Compose needs: nothing of the test process's HEIMDEX_* or AWS_* leaks into the stack.
        environ = {name: os.environ[name] for name in ("PATH", "HOME", "DOCKER_CONFIG", "DOCKER_HOST")
                   if name in os.environ}
        result = subprocess.run(
            [str(REPO_ROOT / "scripts" / "compose-offline.sh"), "--project-name", self.project,
             "--env-file", str(self.env_path), *args],
            cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=timeout_s)
        if check and result.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
        return result

    @property
    def engine(self) -> docker.DockerClient:
        return docker.from_env()

    def containers(self, all: bool = True, **labels: str) -> list:  # noqa: A002 (docker-py's name)
        filters = [f"{key.replace('__', '/')}={value}" if value else key.replace("__", "/")
                   for key, value in labels.items()]
        # A run container removes itself when its run ends, maybe between docker-py's listing and its
        # look at each container listed (a 404 then): one gone meanwhile is no longer there.
        return self.engine.containers.list(all=all, filters={"label": filters}, ignore_removed=True)

    def service(self, name: str):  # noqa: ANN201 (docker-py's Container)
        [container] = self.engine.containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.project}", f"com.docker.compose.service={name}"]})
        return container

    def run_containers(self, all: bool = True) -> list:  # noqa: A002
        """The containers DockerRunLauncher started (it labels each with its run's id)."""
        return self.containers(all=all, dagster__run_id="")

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://{self.env['HEIMDEX_API_ADDRESS']}", timeout=30)

    def s3(self):  # noqa: ANN201 (boto3's client type is generated)
        return boto3.client("s3", endpoint_url=f"http://{self.env['MINIO_ADDRESS']}",
                            aws_access_key_id=self.env["MINIO_ROOT_USER"],
                            aws_secret_access_key=self.env["MINIO_ROOT_PASSWORD"],
                            region_name=self.env["AWS_DEFAULT_REGION"])

    @property
    def bucket(self) -> str:
        return self.env["HEIMDEX_S3_BUCKET"]

    def graphql(self, query: str, **variables: Any) -> dict[str, Any]:
        """Ask the Dagster webserver of the stack (its published port)."""
        answer = httpx.post(f"http://{self.env['DAGSTER_WEBSERVER_ADDRESS']}/graphql",
                            json={"query": query, "variables": variables}, timeout=30)
        answer.raise_for_status()
        body = answer.json()
        assert "errors" not in body, body
        return body["data"]

    def run_tags(self, run_id: str) -> dict[str, str]:
        data = self.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
                            id=run_id)
        return {tag["key"]: tag["value"] for tag in data["runOrError"].get("tags", [])}

    def runs_of(self, asset_id: str) -> list[dict[str, str]]:
        """The runs of the asset's partition: id and status."""
        answer = self.graphql("""query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/partition",
            value: $id}]}) { ... on Runs { results { runId status } } } }""", id=asset_id)
        return answer["runsOrError"]["results"]

    def step_started(self, run_id: str, step_key: str) -> bool:
        data = self.graphql("""query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
            events { __typename ... on ExecutionStepStartEvent { stepKey } } } } }""", id=run_id)
        events = data["logsForRun"].get("events", [])
        return any(event.get("stepKey") == step_key for event in events
                   if event["__typename"] == "ExecutionStepStartEvent")


# A receiver of webhooks on the stack's network: it prints each POST as one JSON line, which the
# tests read back from its logs. It runs from the Heimdex image (the only Python image at hand).
RECEIVER_SCRIPT = """
import base64, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(json.dumps({"path": self.path, "headers": dict(self.headers.items()),
                          "body": base64.b64encode(body).decode()}), flush=True)
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


def received(container) -> list[dict[str, Any]]:  # noqa: ANN001 (docker-py's Container)
    """The requests the receiver container got, in order: path, headers and raw body."""
    requests = []
    for line in container.logs(stderr=False).decode().splitlines():
        request = json.loads(line)
        request["body"] = base64.b64decode(request["body"])
        requests.append(request)
    return requests
