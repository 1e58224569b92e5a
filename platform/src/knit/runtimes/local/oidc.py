"""The local runtime's token issuer at work: the JWKS and the token files it keeps fresh.

As Kubernetes projects a ServiceAccount token with an audience into a pod and the
kubelet renews it, the local runtime writes each token a sender needs to a file of its
own (mode 0600, in a folder only the user can open) and writes a new one once half its
lifetime has passed; a sender reads the file again whenever it changed. The public keys
go to `jwks.json` next to them, for sinks to verify with. The private key stays in the
runtime's memory: only the runtime can make tokens, and they die with it.

    <directory>/jwks.json                 the issuer's public keys (JWKS)
    <directory>/tokens/<sub>--<aud>-<hash>.jwt
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from knit.eventing.identity import Issuer

JWKS_FILE = "jwks.json"
TOKENS_FOLDER = "tokens"
CHECK_INTERVAL = 60.0  # seconds between looks for tokens due for renewal


def _write_private(path: Path, text: str, mode: int) -> None:
    """Replace `path` at once with a file of `mode` holding `text`: a reader sees the old
    file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def token_file_name(subject: str, audience: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{subject}--{audience}")[:160]
    digest = hashlib.sha256(f"{subject}\n{audience}".encode()).hexdigest()[:12]
    return f"{readable}-{digest}.jwt"


class TokenFiles:
    def __init__(
        self,
        directory: Path,
        issuer: Issuer | None = None,
        clock: Callable[[], float] = time.time,
        renew_after: float | None = None,
    ) -> None:
        self.directory = directory.resolve()
        self.issuer = issuer or Issuer()
        self.clock = clock
        self.renew_after = self.issuer.lifetime / 2 if renew_after is None else renew_after
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self._tokens_folder = self.directory / TOKENS_FOLDER
        shutil.rmtree(self._tokens_folder, ignore_errors=True)  # a previous run's: signed by a key now gone
        self._tokens_folder.mkdir(mode=0o700)
        self.jwks_path = self.directory / JWKS_FILE
        _write_private(self.jwks_path, json.dumps(self.issuer.jwks(), indent=2) + "\n", 0o644)
        self._issued: dict[tuple[str, str], float] = {}

    def token_file(self, subject: str, audience: str) -> str:
        """The file holding `subject`'s token for `audience`, written now if it is new."""
        key = (subject, audience)
        if key not in self._issued:
            self._write(key, self.clock())
        return str(self._path(key))

    def renew(self) -> int:
        """Write a new token wherever the current one has reached `renew_after`; how many."""
        now = self.clock()
        due = [key for key, issued in self._issued.items() if now - issued >= self.renew_after]
        for key in due:
            self._write(key, now)
        return len(due)

    def remove(self) -> None:
        """Remove the token files and the JWKS (the runtime is stopping; the key goes with it)."""
        shutil.rmtree(self._tokens_folder, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.jwks_path.unlink()

    def _path(self, key: tuple[str, str]) -> Path:
        return self._tokens_folder / token_file_name(*key)

    def _write(self, key: tuple[str, str], now: float) -> None:
        _write_private(self._path(key), self.issuer.issue(*key, now) + "\n", 0o600)
        self._issued[key] = now
