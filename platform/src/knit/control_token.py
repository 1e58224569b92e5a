"""How the knit commands find a running `knit dev`: its control API's default port and URL
variable, and its token file: where `knit dev` leaves its URL and bearer token, and how the
knit commands (and tests) find them.

Like a kubeconfig: one JSON file per control port, `~/.knit/control/<port>.json` holding
`{"url": ..., "token": ...}`, in a folder only the user can enter (0700), the file only the
user can read (0600), removed when `knit dev` stops. Anything else on the machine (another
user, a web page in a browser) cannot read it, so cannot act on the control API. The
home folder, not `$XDG_RUNTIME_DIR`: every shell of the user agrees on it (ssh, sudo -u,
containers often have no runtime folder), and one file per port lets several `knit dev`
run side by side. `KNIT_CONTROL_TOKEN` overrides the file for the commands.

A token is only ever sent to a loopback URL whose port matches the file's: `--control
http://elsewhere:8081` does not get the local token.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORT = 8081  # where knit dev serves its control API unless told otherwise
CONTROL_URL_ENV = "KNIT_CONTROL_URL"  # which knit dev the commands talk to
TOKEN_ENV = "KNIT_CONTROL_TOKEN"
LOOPBACK_NAMES = frozenset(("127.0.0.1", "localhost", "::1"))


class TokenFileError(ValueError):
    """The token file cannot be written; the message says where and what to do."""


def token_folder() -> Path:
    return Path.home() / ".knit" / "control"


def token_file(port: int) -> Path:
    return token_folder() / f"{port}.json"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def is_loopback_authority(authority: str) -> bool:
    """Whether a Host header (or URL authority) names this machine's loopback: 127.0.0.1,
    localhost or [::1], with any port or none."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        name, closed, rest = authority[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            return False
        port = rest[1:]
    else:
        name, _, port = authority.partition(":")
    return name in LOOPBACK_NAMES and re.fullmatch(r"[0-9]{0,5}", port) is not None


def write_token_file(port: int, url: str, token: str) -> Path:
    """Write `{url, token}` where the commands look for this port's token; the file's path."""
    folder = token_folder()
    path = token_file(port)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise TokenFileError(f"{folder} is not a folder of yours; remove it so knit dev can make its own")
        if stat.S_IMODE(info.st_mode) != 0o700:
            folder.chmod(0o700)  # made by someone's umask or by hand: only the user may enter
        scratch = folder / f".{port}.json.{os.getpid()}"
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump({"url": url, "token": token}, out)
        os.replace(scratch, path)  # whole or not at all: a command never reads half a file
    except OSError as error:
        raise TokenFileError(
            f"cannot write the control API's token to {path} ({error.strerror or error}); "
            "make that folder writable for you, or point HOME elsewhere"
        ) from None
    return path


def remove_token_file(port: int, token: str) -> None:
    """Remove this port's token file if it is still ours (a later knit dev may have replaced it)."""
    path = token_file(port)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("token") == token:
            path.unlink()


def token_for(url: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token to send to the control API at `url`: KNIT_CONTROL_TOKEN, else the token file
    of the url's port when the url is a loopback one; None when there is none."""
    if environ.get(TOKEN_ENV):
        return environ[TOKEN_ENV]
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if port is None or not is_loopback_authority(parts.netloc):
        return None
    try:
        saved = json.loads(token_file(port).read_text())
        same_port = urlsplit(saved["url"]).port == port
    except (OSError, ValueError, KeyError, TypeError):
        return None
    token = saved.get("token")
    return token if same_port and isinstance(token, str) else None
