"""docker-compose.yml's health checks against a real webserver and code server, started in the order a
compose stack can start them: the webserver first, the code server still importing."""

import os
import sys
import time
from pathlib import Path

from heimdex_pipeline.admin.code_server_health import serving
from heimdex_pipeline.admin.webserver_health import unloaded_locations
from tests.dagster_home import (
    free_port,
    instance_yaml,
    start_process,
    stop_process,
    wait_for,
    wait_until_serving,
)


def test_the_webserver_is_healthy_only_once_it_has_loaded_the_code_server_it_started_without(
        tmp_path: Path) -> None:
    home, grpc_port, web_port = tmp_path, free_port(), free_port()
    (home / "dagster.yaml").write_text(instance_yaml())
    (home / "workspace.yaml").write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {grpc_port}\n      location_name: heimdex\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(tmp_path / "derived"),
           "HEIMDEX_DATABASE_URL": f"sqlite:///{tmp_path / 'catalog.db'}"}
    bin_dir = Path(sys.executable).parent
    url = f"http://127.0.0.1:{web_port}"
    assert unloaded_locations(url, timeout_s=1) != [], "nothing serves yet"
    webserver = start_process([str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port),
                               "-w", str(home / "workspace.yaml")], env, home / "webserver.log")
    code_server = None
    try:
        wait_until_serving(f"{url}/server_info", webserver, home / "webserver.log", 120)
        assert not serving(grpc_port, timeout_s=1)
        problems = unloaded_locations(url)
        assert len(problems) == 1 and problems[0].startswith("heimdex: LOADED {'__typename': 'PythonError'"), problems

        code_server = start_process([str(bin_dir / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p",
                                     str(grpc_port), "-m", "heimdex_pipeline.definitions", "--location-name",
                                     "heimdex"], env, home / "code_server.log")
        started = time.monotonic()
        wait_for("the code server serves", lambda: serving(grpc_port, timeout_s=1), 120,
                 alive=lambda: code_server.poll() is None, details=lambda: (home / "code_server.log").read_text())
        # The webserver notices the server it watches and reloads the location on its own.
        wait_for("the webserver loads the location", lambda: not unloaded_locations(url),
                 120 - (time.monotonic() - started))
    finally:
        if code_server is not None:
            stop_process(code_server)
        stop_process(webserver)
