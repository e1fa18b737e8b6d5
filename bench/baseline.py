"""The builds a benchmark measures: the working tree, and with `--baseline REV` another commit.

`baseline_build(REV)` resolves REV (a commit, tag or branch: `HEAD~3`, `main`) to its commit,
exports that commit's files with `git archive` into a temporary directory (the repository and
its worktrees are left as they are), and installs them, *not* editable, with the `postgres` and
`redis` extras into a virtualenv of their own: `.bench-cache/<commit>/venv` at the top of this
tree (ignored by git). That virtualenv's Python imports the baseline's Tocsin from its own
site-packages, never this tree's `src/`. The dependencies are pinned to the versions installed
beside the interpreter running the benchmark (`pip freeze`), so that what differs between the
two builds is Tocsin's code; where the baseline's requirements rule that out, they are resolved
afresh and the run says so.

The first build takes a minute or two (mostly pip); `.bench-cache/<commit>/build.json` is
written last, and a later run whose commit, Python and pins are the same reuses the build at
once. Remove `.bench-cache/` (or `make clean`) to rebuild.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from compare import BASELINE, CURRENT

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".bench-cache"
EXTRAS = "postgres,redis"
BUILD_FORMAT = 1
PIP_TIMEOUT = 1800.0
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[^\s;@]+$")


@dataclass(frozen=True, slots=True)
class Build:
    """What serves a benchmark's requests: `python` runs `-m tocsin serve`."""

    name: str  # CURRENT or BASELINE
    commit: str  # the full hash; the current tree's ends in "+dirty" when src/ has changes
    python: str
    revision: str = ""  # what --baseline named, e.g. HEAD~1
    pinned: bool = True  # dependencies at the versions of the benchmark's own environment

    @property
    def short(self) -> str:
        sha, plus, rest = self.commit.partition("+")
        return sha[:10] + plus + rest

    @property
    def label(self) -> str:
        """How tables name it: `baseline 1a2b3c4d5e`, `current 6f7a8b9c0d+dirty`."""
        return f"{self.name} {self.short}"

    def describe(self) -> str:
        named = f" ({self.revision})" if self.revision and self.revision != self.commit else ""
        unpinned = ", dependencies not pinned to this environment's" if not self.pinned else ""
        return f"{self.name} {self.short}{named}{unpinned}"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True,
                          timeout=60)
    return done.stdout.strip()


def current_build() -> Build:
    """The working tree, run by this interpreter: HEAD, `+dirty` if `git status --porcelain
    -- src` lists anything; `unknown` outside git."""
    try:
        head = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--", "src")
    except (OSError, subprocess.SubprocessError):
        return Build(name=CURRENT, commit="unknown", python=sys.executable)
    return Build(name=CURRENT, commit=head + ("+dirty" if dirty else ""), python=sys.executable)


def resolve(revision: str) -> str:
    """The full hash of the commit `revision` names; SystemExit if it names none."""
    if not revision or revision.startswith("-"):
        raise SystemExit(f"--baseline: not a git revision: {revision!r}")
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"--baseline: {revision!r} names no commit of {REPO}") from None


def pins_from_freeze(frozen: str) -> str:
    """The `name==version` lines of `pip freeze` output, sorted, Tocsin's left out (as are
    editable installs, direct URLs and comments): a constraints file."""
    lines = sorted({line.strip() for line in frozen.splitlines()
                    if _PINNED.match(line.strip())
                    and not line.strip().lower().startswith("tocsin==")})
    return "".join(f"{line}\n" for line in lines)


def _pins() -> str:
    """Pins of every distribution installed beside this interpreter, but Tocsin."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            check=True, capture_output=True, text=True, timeout=120).stdout
    return pins_from_freeze(frozen)


def _fingerprint(commit: str, pins: str) -> dict[str, str | int]:
    return {
        "format": BUILD_FORMAT,
        "commit": commit,
        "python": sys.version,
        "base_python": str(getattr(sys, "_base_executable", sys.executable)),
        "pins_sha256": hashlib.sha256(pins.encode()).hexdigest(),
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build of a commit at a time, however many benchmarks start at once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], log: Path, *, cwd: Path | str | None = None,
         env: dict[str, str] | None = None) -> None:
    """`command`, its output appended to `log`; on failure, the end of `log` goes to stderr."""
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        try:
            subprocess.run(command, check=True, timeout=PIP_TIMEOUT, stdin=subprocess.DEVNULL,
                           stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        except subprocess.CalledProcessError:
            handle.flush()
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            print(f"[baseline] failed: {' '.join(command)}\n{tail}\n(all of it in {log})",
                  file=sys.stderr)
            raise


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _export(commit: str, into: Path, log: Path) -> None:
    """The commit's files (as `git archive` gives them) in `into`."""
    into.mkdir(parents=True)
    archive = into.with_suffix(".tar")
    _run(["git", "archive", "--format=tar", f"--output={archive}", commit], log, cwd=REPO)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    archive.unlink()


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _check_isolated(python: Path, venv: Path, cwd: Path) -> None:
    """The virtualenv's Python must import Tocsin from the virtualenv, not from a source tree."""
    found = subprocess.run(
        [str(python), "-c", "import tocsin, tocsin.cli; print(tocsin.__file__)"],
        cwd=cwd, env=_clean_env(), check=True, capture_output=True, text=True, timeout=120,
    ).stdout.strip()
    if not Path(found).resolve().is_relative_to(venv.resolve()):
        raise RuntimeError(f"the baseline's Python imports tocsin from {found}, not from {venv}")


def _install(commit: str, target: Path, pins: str) -> bool:
    """Build `commit` into target/venv (its log in target/build.log); True if the pins held."""
    venv = target / "venv"
    log = target / "build.log"
    python = _venv_python(venv)
    constraints = target / "pins.txt"
    constraints.write_text(pins)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    with tempfile.TemporaryDirectory(prefix="tocsin-baseline-") as tmp:
        source = Path(tmp) / "src"
        _export(commit, source, log)
        _run([sys.executable, "-m", "venv", str(venv)], log)
        _run([*pip, "install", "--upgrade", "pip"], log, env=_clean_env())
        requirement = f"{source}[{EXTRAS}]"
        pinned = True
        try:
            _run([*pip, "install", "--constraint", str(constraints), requirement], log,
                 env=_clean_env(), cwd=tmp)
        except subprocess.CalledProcessError:
            print("[baseline] its requirements conflict with this environment's versions: "
                  "resolving them afresh", file=sys.stderr)
            pinned = False
            _run([*pip, "install", requirement], log, env=_clean_env(), cwd=tmp)
        _check_isolated(python, venv, Path(tmp))
    return pinned


def baseline_build(revision: str, cache_dir: Path = CACHE_DIR) -> Build:
    """The baseline's build, from `cache_dir/<commit>/` when a complete one is there (same
    commit, Python and pins), else built there now."""
    commit = resolve(revision)
    pins = _pins()
    fingerprint = _fingerprint(commit, pins)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / commit
    marker = target / "build.json"
    with _locked(cache_dir / f"{commit}.lock"):
        recorded: dict[str, object] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            recorded = json.loads(marker.read_text())
        python = _venv_python(target / "venv")
        if {k: recorded.get(k) for k in fingerprint} == fingerprint and python.exists():
            print(f"[baseline] {revision} = {commit[:10]}: reusing {target}", file=sys.stderr)
            return Build(name=BASELINE, commit=commit, python=str(python), revision=revision,
                         pinned=recorded.get("pinned") is True)
        if target.exists():
            print(f"[baseline] {target} is incomplete or was built for another Python or other "
                  "pins: rebuilding it", file=sys.stderr)
            shutil.rmtree(target)
        target.mkdir()
        print(f"[baseline] building {revision} = {commit[:10]} into {target} (git archive, "
              "python -m venv, pip install; a minute or two)", file=sys.stderr)
        started = time.monotonic()
        pinned = _install(commit, target, pins)
        marker.write_text(json.dumps({**fingerprint, "pinned": pinned,
                                      "revision": revision}, indent=2) + "\n")
        print(f"[baseline] built in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return Build(name=BASELINE, commit=commit, python=str(python), revision=revision,
                 pinned=pinned)


def builds_to_measure(revision: str | None) -> list[Build]:
    """The working tree's build, after the baseline's (built now, or found in the cache) when
    a revision is given: the order in which interleave() runs them first."""
    current = current_build()
    if revision is None:
        return [current]
    return [baseline_build(revision), current]
