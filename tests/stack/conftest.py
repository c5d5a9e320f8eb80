"""The stack of docker-compose.yml, up once for the session on the Docker engine that
scripts/test.sh starts, and taken down with its volumes at the end."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from tests.dagster_home import wait_for
from tests.media.synthetic import make_clip
from tests.stack.compose import PROJECT, RECEIVER, RECEIVER_SCRIPT, Stack, env_file

STACK = Path(__file__).parent


# tryfirst: before pytest-xdist reads the xdist_group marks (its hook would otherwise come first
# wherever this conftest is loaded before the worker starts, as when its folder is on the command line).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One worker runs the stack's tests in file order: they share one stack, and some restart it."""
    for item in items:
        if STACK in item.path.parents:
            item.add_marker(pytest.mark.stack)
            item.add_marker(pytest.mark.xdist_group("stack"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A stack test that fails carries the last log lines of the services that run things: what CI
    printed is then all there is to see why."""
    outcome = yield
    report = outcome.get_result()
    running = getattr(item, "funcargs", {}).get("stack")
    if report.when == "call" and report.failed and isinstance(running, Stack):
        for service in ("dagster_daemon", "dagster_webserver", "api"):
            logs = running.compose("logs", "--no-color", "--timestamps", "--tail", "80", service, check=False)
            report.sections.append((f"stack: the last log lines of {service}", logs.stdout + logs.stderr))


def project_leftovers(engine: docker.DockerClient) -> list[str]:
    """Whatever of the compose project is on the engine: containers, volumes, networks."""
    label = {"label": f"com.docker.compose.project={PROJECT}"}
    return ([f"container {c.name}" for c in engine.containers.list(all=True, filters=label)]
            + [f"volume {v.name}" for v in engine.volumes.list(filters=label)]
            + [f"network {n.name}" for n in engine.networks.list(filters=label)])


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack, built and up with every service healthy (`up -d --build --wait`)."""
    engine = docker.from_env()  # fails here, not skips, when scripts/test.sh could not start dockerd
    engine.ping()
    folder = tmp_path_factory.mktemp("stack")
    running = Stack(folder / ".env", env_file(folder / ".env"))
    running.compose("down", "--volumes", "--remove-orphans")
    started = time.monotonic()
    running.compose("up", "--detach", "--build", "--wait", "--wait-timeout", "600")
    print(f"stack: built and healthy in {time.monotonic() - started:.1f} s")
    yield running
    for container in engine.containers.list(all=True, filters={"name": RECEIVER}):
        container.remove(force=True)
    # A run still in its container would keep the network (and the storage volume) in use: `down`
    # cannot remove them then. Each test waits for its runs; this is the last word.
    wait_for("the last run container ends", lambda: not running.run_containers(all=True), 180, every_s=1)
    running.compose("down", "--volumes", "--remove-orphans")
    left = project_leftovers(engine)
    assert not left, f"`down -v` left {left}"


@pytest.fixture(scope="module")
def receiver(stack: Stack):  # noqa: ANN201 (docker-py's Container)
    """The tests' webhook receiver, a container on the stack's network, http://RECEIVER:8080/; removed
    after its module, since it would keep the network from a `down`."""
    engine = stack.engine
    for old in engine.containers.list(all=True, filters={"name": RECEIVER}):
        old.remove(force=True)
    image = f"heimdex:{stack.env['HEIMDEX_IMAGE_TAG']}"
    container = engine.containers.run(image, ["python", "-c", RECEIVER_SCRIPT], name=RECEIVER, detach=True,
                                      network="heimdex_network", user="1000")
    yield container
    container.remove(force=True)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six seconds of 320x240 H.264 in three scenes."""
    out = tmp_path_factory.mktemp("clips") / "short.mp4"
    make_clip(out, (2.0, 2.0, 2.0))
    return out


@pytest.fixture(scope="session")
def clip_maker(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Make a fresh clip (unique content: its own asset) of the given scene lengths."""
    folder = tmp_path_factory.mktemp("unique")
    made = [0]

    def make(durations: tuple[float, ...] = (1.0, 1.0), size: str = "320x240") -> Path:
        made[0] += 1
        out = folder / f"clip_{made[0]}.mp4"
        # The frame rate makes the content unique: each clip is a new asset and a new run.
        make_clip(out, durations, size=size, rate=20 + made[0])
        return out

    return make
