"""`python -m heimdex_pipeline.admin.webserver_health PORT`: exits 0 when the Dagster webserver on
127.0.0.1:PORT answers and every code location of its workspace is loaded.

`/server_info` answers as soon as the webserver serves, even while a code location it could not
reach at start (a code server still importing) is an error in its workspace: a run launched then
fails with `PipelineNotFoundError`. This asks the webserver's GraphQL for the locations instead,
without importing Dagster, as docker-compose.yml's health check runs it every few seconds.
"""

import json
import sys
import urllib.request

LOCATIONS_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def unloaded_locations(url: str, timeout_s: float = 5.0) -> list[str]:
    """What keeps the webserver at `url` from launching runs: one line per location not loaded, or why
    its workspace could not be read; empty when every location is loaded."""
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": LOCATIONS_QUERY}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            workspace = json.load(response)["data"]["workspaceOrError"]
    except (OSError, ValueError, KeyError, TypeError) as error:  # refused, timed out, not Dagster's GraphQL
        return [f"webserver at {url}: {error}"]
    if workspace["__typename"] != "Workspace":
        return [f"webserver at {url}: workspace is {workspace['__typename']}"]
    if not workspace["locationEntries"]:
        return [f"webserver at {url}: no code location in its workspace"]
    return [f"{entry['name']}: {entry['loadStatus']} {entry['locationOrLoadError'] or {}}"
            for entry in workspace["locationEntries"]
            if entry["loadStatus"] != "LOADED" or (entry["locationOrLoadError"] or {}).get("__typename")
            != "RepositoryLocation"]


if __name__ == "__main__":
    problems = unloaded_locations(f"http://127.0.0.1:{int(sys.argv[1])}")
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1 if problems else 0)
