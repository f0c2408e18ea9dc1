"""Build the repository's Dockerfile with podman and run the image's own command from its
root filesystem: the image tests (tests/image) use it.

The base image is the real `python:3.11-slim` when a registry serves it; where none does, a
stand-in made from Debian's packages with debootstrap (bookworm: Python 3.11, pip) is
imported under that name. Everything lives in a podman storage of its own under a cache
folder outside the repository (`TTS_IMAGE_CACHE`, default ~/.cache/tts-service-image), so
the machine's own images are never touched and a second run reuses the base and the build's
layers. The image is run without an OCI runtime (crun and runc cannot set rlimits in some
sandboxes): `podman create` + `podman mount` give its root filesystem, and `chroot
--userspec` starts the image's CMD there as its USER, in its WORKDIR, with its ENV, the
volumes bind-mounted where the image declares them."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE = "docker.io/library/python:3.11-slim"
TAG = "localhost/tts-service:test"
STAND_IN_LABEL = "tts-service.stand-in"
CONTAINER_LABEL = "tts-service.test=image"
OWNER_LABEL = "tts-service.test.owner"
STAND_IN_PACKAGES = "python3,python3-pip,python3-venv,ca-certificates"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def cache_dir() -> Path:
    explicit = os.environ.get("TTS_IMAGE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "tts-service-image"


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """podman on the tests' own storage, output captured as text."""
    cache = cache_dir()
    command = ["podman", "--root", str(cache / "storage"), "--runroot", str(cache / "run")]
    done = subprocess.run(
        [*command, *args],
        capture_output=True,
        timeout=timeout,
        text=True,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def unavailable() -> str | None:
    """Why this machine cannot build and run the image, or None when it can."""
    if os.uname().sysname != "Linux":
        return "the image tests need Linux (podman, chroot, bind mounts)"
    if shutil.which("podman") is None:
        return (
            "podman is not installed: `make test` installs it (.ci/ensure-image-tools) "
            "where apt-get and root are available"
        )
    if os.geteuid() != 0:
        return (
            "the image tests need root: chroot and bind mounts run the image's root "
            "filesystem, debootstrap makes the stand-in base image"
        )
    if shutil.which("chroot") is None:
        return "chroot (coreutils) is not installed"
    if shutil.which("debootstrap") is None and not base_reachable():
        return (
            f"{BASE} cannot be pulled here and debootstrap, which makes a stand-in for it, "
            "is not installed (.ci/ensure-image-tools installs it where apt-get is)"
        )
    return None


def base_reachable() -> bool:
    return base_present() or pull_base()


def base_present() -> bool:
    return podman("image", "exists", BASE, check=False).returncode == 0


def pull_base() -> bool:
    try:
        return podman("pull", "--quiet", BASE, timeout=90, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def is_stand_in(image: str) -> bool:
    return STAND_IN_LABEL in (inspect(image)["Config"].get("Labels") or {})


def apt_mirror() -> str:
    """The Debian mirror apt already uses (deb822 .sources or a sources.list line)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for stanza in path.read_text().split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            if uris and re.search(r"^Suites:.*\bbookworm\b", stanza, re.M):
                if "security" not in uris.group(1):
                    return uris.group(1)
    lists = [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.list")]
    for path in lists:
        if path.exists():
            for line in path.read_text().splitlines():
                found = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if found and "security" not in found.group(1):
                    return found.group(1)
    return DEFAULT_MIRROR


def machine_pip_settings() -> dict[str, str]:
    """This machine's pip index settings that mean something inside the image: network
    indexes (http, https) and trusted hosts; local folders and file:// indexes do not."""
    settings: dict[str, str] = {}
    done = subprocess.run(
        ["python3", "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
    )
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.split(".", 1)[-1].strip()
        settings[name] = value.strip().strip("'\"")
    for name in ("index-url", "extra-index-url", "trusted-host"):
        env = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if env:
            settings[name] = env
    kept: dict[str, str] = {}
    for name in ("index-url", "extra-index-url"):
        urls = [u for u in settings.get(name, "").split() if u.startswith(("http:", "https:"))]
        if urls:
            kept[name] = " ".join(urls)
    if settings.get("trusted-host"):
        kept["trusted-host"] = settings["trusted-host"]
    return kept


def machine_ca_bundle() -> Path | None:
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def make_stand_in() -> None:
    """debootstrap a Debian bookworm with Python 3.11 and pip, shaped like python:3.11-slim
    (pip installs system-wide, `python` and `pip` on PATH, this machine's index and CAs),
    and import it as BASE."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        made = subprocess.run(
            [
                "debootstrap", "--variant=minbase", f"--include={STAND_IN_PACKAGES}",
                "bookworm", str(rootfs), apt_mirror(),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        if made.returncode != 0:
            raise RuntimeError(f"debootstrap failed:\n{made.stdout[-3000:]}{made.stderr[-3000:]}")
        for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()
        for link, target in (("python", "python3"), ("pip", "pip3")):
            path = rootfs / "usr/bin" / link
            if not path.exists():
                path.symlink_to(target)
        bundle = machine_ca_bundle()
        if bundle is not None:
            shutil.copyfile(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
        config = configparser.ConfigParser()
        config["global"] = {"cert": "/etc/ssl/certs/ca-certificates.crt", **machine_pip_settings()}
        with open(rootfs / "etc/pip.conf", "w") as out:
            config.write(out)
        for leftovers in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftovers).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [
                "podman", "--root", str(cache / "storage"), "--runroot", str(cache / "run"),
                "import",
                "--change", f"LABEL {STAND_IN_LABEL}=debian-bookworm-debootstrap",
                "--change",
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change", 'CMD ["python3"]',
                "-", BASE,
            ],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"importing the stand-in base failed:\n{imported.stderr}")


def ensure_base() -> str:
    """The base image in the tests' storage, the real one when it can be pulled (tried
    again while the one here is the stand-in); says which one it is."""
    if (not base_present() or is_stand_in(BASE)) and pull_base():
        return f"{BASE} (pulled)"
    if not base_present():
        make_stand_in()
    if not is_stand_in(BASE):
        return f"{BASE} (pulled before)"
    return f"{BASE} stand-in: Debian bookworm from debootstrap ({STAND_IN_PACKAGES})"


def inspect(image: str) -> dict[str, Any]:
    (found,) = json.loads(podman("image", "inspect", image).stdout)
    result: dict[str, Any] = found
    return result


def build(tag: str = TAG, device: str = "cpu", timeout: float = 900) -> float:
    """`podman build` of this tree's unchanged Dockerfile (docker format, which keeps the
    HEALTHCHECK); returns the seconds it took."""
    started = time.monotonic()
    done = podman(
        "build", "--isolation", "chroot", "--pull=never", "--network", "host",
        "--format", "docker", "--layers", "--build-arg", f"DEVICE={device}",
        "-t", tag, str(ROOT),
        timeout=timeout, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"podman build failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return time.monotonic() - started


def cleanup_leftovers() -> None:
    """What an interrupted run left: for each of the tests' containers whose owner (the
    test process that created it) is gone, the processes rooted in its filesystem, the bind
    mounts over it, and the container. A run going on beside this one keeps its own."""
    listed = podman(
        "ps", "-a", "--filter", f"label={CONTAINER_LABEL}",
        "--format", '{{.ID}} {{index .Labels "' + OWNER_LABEL + '"}}',
        check=False,
    )  # fmt: skip
    for line in listed.stdout.splitlines():
        container, _, owner = line.partition(" ")
        if owner.strip().isdigit() and Path(f"/proc/{owner.strip()}").exists():
            continue
        merged = podman(
            "container", "inspect", "--format", "{{.GraphDriver.Data.MergedDir}}", container,
            check=False,
        ).stdout.strip()  # fmt: skip
        if merged:
            kill_rooted_under(merged + "/")
            unmount_under(merged + "/")
        podman("rm", "-f", container, check=False)


def kill_rooted_under(prefix: str) -> None:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.readlink(proc / "root").startswith(prefix.rstrip("/")):
                    os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


def unmount_under(prefix: str) -> None:
    """Lazily unmount every mount point below `prefix`, deepest first."""
    mounts = []
    with open("/proc/self/mounts") as table:
        for line in table:
            point = line.split()[1].encode().decode("unicode_escape")
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


@dataclass
class ImageConfig:
    user: str
    workdir: str
    env: dict[str, str]
    cmd: list[str]
    healthcheck: list[str]
    volumes: list[str]
    exposed_ports: list[str]
    size: int

    @classmethod
    def of(cls, image: str) -> ImageConfig:
        found = inspect(image)
        config = found["Config"]
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        health = config.get("Healthcheck") or found.get("Healthcheck") or {}
        return cls(
            user=config.get("User") or "0:0",
            workdir=config.get("WorkingDir") or "/",
            env=env,
            cmd=list(config.get("Entrypoint") or []) + list(config.get("Cmd") or []),
            healthcheck=list(health.get("Test") or []),
            volumes=sorted(config.get("Volumes") or {}),
            exposed_ports=sorted(config.get("ExposedPorts") or {}),
            size=int(found["Size"]),
        )


@dataclass
class ImageRoot:
    """A container's root filesystem, mounted, with /proc, /sys, /dev and the volumes bound
    in: `run` and `start` run commands there as the image's user."""

    image: str
    config: ImageConfig
    container: str = ""
    path: Path = Path("/")
    mounts: list[Path] = field(default_factory=list)

    def __enter__(self) -> ImageRoot:
        self.container = podman(
            "create", "--label", CONTAINER_LABEL, "--label", f"{OWNER_LABEL}={os.getpid()}",
            "--network", "host", self.image,
        ).stdout.strip()  # fmt: skip
        self.path = Path(podman("mount", self.container).stdout.strip())
        for system in ("proc", "sys", "dev"):
            self.bind(Path("/" + system), "/" + system)
        return self

    def bind(self, source: Path, target: str, read_only: bool = False) -> None:
        point = self.path / target.lstrip("/")
        point.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(source), str(point)], check=True, timeout=30)
        self.mounts.append(point)
        if read_only:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(point)], check=True, timeout=30)

    def __exit__(self, *exc: object) -> None:
        for point in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(point)], capture_output=True, timeout=30)
        self.mounts.clear()
        if self.container:
            podman("umount", self.container, check=False)
            podman("rm", "-f", self.container, check=False)

    def home(self) -> str:
        uid = self.config.user.split(":")[0]
        for line in (self.path / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if uid in (fields[0], fields[2]):
                return fields[5]
        return "/"

    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        """chroot into the root filesystem as the image's USER, then `env -i` with the
        image's ENV (and HOME, as docker sets it), in its WORKDIR."""
        full_env = {"HOME": self.home(), **self.config.env, **(env or {})}
        return [
            "chroot", f"--userspec={self.config.user}", str(self.path),
            "/usr/bin/env", "-i", "-C", self.config.workdir,
            *(f"{key}={value}" for key, value in full_env.items()),
            *argv,
        ]  # fmt: skip

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv, env), capture_output=True, text=True, timeout=timeout
        )

    def start(self, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """The image's own CMD; chroot and env exec it, so the process is the server."""
        with open(log, "wb") as out:
            return subprocess.Popen(
                self.command(self.config.cmd, env), stdout=out, stderr=subprocess.STDOUT
            )
