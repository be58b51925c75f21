"""The Dockerfile, checked statically (no Docker here): base, user, ports, command, build context."""

from __future__ import annotations

import fnmatch

from tests.conftest import REPO
from tests.deploy.conftest import DEPLOY, container, dockerfile, manifests, tomllib


def _one(keyword: str) -> str:
    found = [i.args for i in dockerfile() if i.keyword == keyword]
    assert len(found) == 1, f"{keyword}: {found}"
    return found[0]


def test_base_is_python_slim() -> None:
    """The image builds on an official slim Python that the package supports."""
    base = _one("FROM")
    assert base.startswith("python:3.") and base.endswith("-slim"), base
    minor = int(base.removeprefix("python:3.").split("-")[0])
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert minor >= int(requires.removeprefix(">=3."))


def test_runs_as_the_non_root_user_kubernetes_expects() -> None:
    """USER is numeric and not root, set before CMD, and the same uid as the pod's runAsUser."""
    instructions = dockerfile()
    users = [i for i in instructions if i.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    user = users[-1].args.split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert instructions.index(users[-1]) < next(i for i, x in enumerate(instructions) if x.keyword == "CMD")
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsUser"] == int(user)


def test_exposes_the_configured_ports() -> None:
    """EXPOSE lists the Flight, health and metrics ports of the baked-in config, and nothing else."""
    server = tomllib.loads((DEPLOY / "server.toml").read_text())["server"]
    exposed = {int(port.split("/")[0]) for port in _one("EXPOSE").split()}
    assert exposed == {server["listen_port"], server["health_check_port"], server["metrics_port"]}
    healthcheck = _one("HEALTHCHECK")
    assert f"127.0.0.1:{server['health_check_port']}/live" in healthcheck


def test_cmd_starts_the_sql_service_with_the_baked_config() -> None:
    """CMD runs the CLI on sql_service.main with the config file copied into the image; k8s runs the same."""
    cmd = [i for i in dockerfile() if i.keyword == "CMD"][-1].exec_form()
    assert cmd[:4] == ["gooddata-flight-server", "start", "--methods-provider", "sql_service.main"]
    config_path = cmd[cmd.index("--config") + 1]
    copies = [i.args.split() for i in dockerfile() if i.keyword == "COPY"]
    assert ["deploy/server.toml", config_path] in copies
    assert ["examples/sql_service", "./sql_service"] in copies
    assert container()["args"] == cmd


def test_installs_the_package_with_the_examples_extra() -> None:
    """The image installs this package with the `examples` extra (DuckDB), which pyproject declares."""
    runs = " ".join(i.args for i in dockerfile() if i.keyword == "RUN")
    assert 'pip install ".[examples]"' in runs
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("duckdb") for dep in extras["examples"])


def test_build_context_has_what_copy_needs_and_no_local_state() -> None:
    """Every COPY source exists and passes .dockerignore; the venv, git and data stay out."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip()[:1] not in ("", "#")
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)

    for args in (i.args.split() for i in dockerfile() if i.keyword == "COPY"):
        for source in args[:-1]:
            assert (REPO / source).exists(), source
            assert not ignored(source), source
    for local in (".venv", ".git", ".data", "examples/.data", "tests"):
        assert ignored(local), local
