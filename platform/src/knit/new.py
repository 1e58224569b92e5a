"""`knit new`: a new app from one of knit's templates, and `knit new --update`: an app made so
brought up to the templates' newer commit, keeping the app's own edits.

The templates are folders of platform/src/knit/templates/, rendered by copier from this
repository's git history (copier.yml at its root): an app records the commit it was made from
(`.copier-answers.yml`), and an update replays the templates' change since that commit onto the
app as a three-way merge. So apps are made from committed templates only, and a new app starts
a git history of its own (an update needs the app's edits committed).
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import yaml

TEMPLATES_DIR = Path(__file__).parent / "templates"
TEMPLATES = ("processor", "web", "trigger")
ANSWERS_FILE = ".copier-answers.yml"
# Kubernetes' DNS-1035 label, what a Knative Service's name must be: it names the Service, its
# topics and Python package too.
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


class NewAppError(Exception):
    """What was wrong and what to do, for a person."""


@dataclass(frozen=True)
class NewApp:
    path: Path
    template: str
    commit: str


def name_problems(name: str) -> list[str]:
    """Why `name` cannot name an app: [] when it can."""
    if not DNS_1035_LABEL.fullmatch(name):
        return [
            f"{name!r} is not a DNS-1035 label: use 1 to 63 lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-' (e.g. word-counter)"
        ]
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or find_spec(package) is not None:
        return [f"{name!r} would make the Python package {package!r}, which is already a module here: choose another"]
    return []


def template_repository(source: Path | None = None) -> Path:
    """The knit repository holding the templates: `source`, or the one this knit runs from."""
    repository = (source or TEMPLATES_DIR.parents[3]).resolve()
    if not (repository / "copier.yml").is_file() or not (repository / "platform/src/knit/templates").is_dir():
        raise NewAppError(f"{repository} is not a knit repository (no copier.yml and templates); pass --from a clone")
    top = git(repository, "rev-parse", "--show-toplevel", check=False)
    if top is None or Path(top).resolve() != repository:
        raise NewAppError(f"{repository} is not a git clone of knit: an app's updates come from the templates' history")
    return repository


def create(name: str, template: str, destination: Path, *, source: Path | None = None, force: bool = False) -> NewApp:
    """Render `template` as the app `name` into `destination` and commit it there."""
    import copier  # imported here: the other knit commands do not need it

    if template not in TEMPLATES:
        raise NewAppError(f"no template {template!r}: choose one of {', '.join(TEMPLATES)}")
    if problems := name_problems(name):
        raise NewAppError(problems[0])
    if destination.exists() and not destination.is_dir():
        raise NewAppError(f"{destination} is a file, not a folder: choose another folder")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise NewAppError(f"{destination} exists and is not empty: choose another, or pass --force to write in it")
    repository = template_repository(source)
    commit = git(repository, "rev-parse", "HEAD")
    assert commit is not None
    copier.run_copy(
        str(repository),
        destination,
        data={"template": template, "app_name": name, "knit_repo": str(repository)},
        vcs_ref=commit,  # the committed templates: an update can find them again
        defaults=True,
        overwrite=force,
        unsafe=False,
        quiet=True,
    )
    if git(destination, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        git(destination, "init", "--quiet")
    commit_all(destination, f"{name}: made by `knit new --template {template}` from knit {commit[:12]}")
    return NewApp(destination, template, commit)


def update(app: Path) -> str:
    """Bring the app at `app` up to the newest commit of the knit repository it was made from;
    returns that commit. Where the app and the templates changed the same lines, the file gets
    conflict markers to resolve by hand."""
    import copier

    answers_path = app / ANSWERS_FILE
    if not answers_path.is_file():
        raise NewAppError(f"{app} has no {ANSWERS_FILE}: it was not made by `knit new`")
    answers = yaml.safe_load(answers_path.read_text()) or {}
    repository = template_repository(Path(answers.get("_src_path", "")))
    if git(app, "status", "--porcelain", "--untracked-files=no", check=False):
        raise NewAppError(f"{app} has changes not committed: commit them first, so the update can keep them")
    commit = git(repository, "rev-parse", "HEAD")
    assert commit is not None
    copier.run_update(
        app,
        vcs_ref=commit,
        defaults=True,
        overwrite=True,
        skip_answered=True,
        unsafe=False,
        quiet=True,
        conflict="inline",
    )
    return commit


def commit_all(folder: Path, message: str) -> str:
    """Everything in `folder` committed, if anything changed; returns the commit now checked out."""
    git(folder, "add", "--all", ".")
    if git(folder, "status", "--porcelain", "--", "."):
        # An identity for machines that have none configured; the user's own wins where it exists.
        identity = ["-c", "user.name=knit", "-c", "user.email=knit@localhost"]
        if git(folder, "config", "user.email", check=False):
            identity = []
        git(folder, *identity, "commit", "--quiet", "--no-verify", "-m", message, "--", ".")
    head = git(folder, "rev-parse", "HEAD")
    assert head is not None
    return head


def git(folder: Path, *args: str, check: bool = True) -> str | None:
    """git's output; None for a failure when not `check`ed (else NewAppError saying what failed)."""
    try:
        done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=check, timeout=60)
    except FileNotFoundError:
        raise NewAppError("git is not installed: install it (e.g. apt-get install git), knit new needs it") from None
    except subprocess.CalledProcessError as error:
        raise NewAppError(f"git {' '.join(args)} failed in {folder}: {error.stderr.strip()}") from None
    return done.stdout.strip() if done.returncode == 0 else None
