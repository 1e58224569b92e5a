"""Sender identity for tests: a real token issuer (knit.eventing.identity.Issuer) whose
JWKS is in a file, as the local runtime has it, and tokens or token files on demand.

    issuer = TestIssuer(tmp_path)
    app = create_app({**issuer.settings(audience)})   # or env=issuer.env(audience)
    requests.post(url, headers={**issuer.authorization(sender, audience), ...})
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from knit.eventing.identity import LOCAL_ISSUER, TOKEN_LIFETIME, Issuer
from knit.runtimes.local.oidc import token_file_name

ISSUER_ENV, JWKS_ENV, AUDIENCE_ENV = "K_OIDC_ISSUER", "K_OIDC_JWKS", "K_AUDIENCE"


class TestIssuer:
    __test__ = False  # not a test class, whatever its name

    def __init__(self, folder: Path, name: str = LOCAL_ISSUER, lifetime: float = TOKEN_LIFETIME) -> None:
        self.folder = folder
        self.issuer = Issuer(name, lifetime=lifetime)
        folder.mkdir(parents=True, exist_ok=True)
        self.jwks_path = folder / "jwks.json"
        self.jwks_path.write_text(json.dumps(self.issuer.jwks()))

    @property
    def name(self) -> str:
        return self.issuer.name

    def token(self, subject: str, audience: str, now: float | None = None) -> str:
        """A token issued at `now` (default: the clock), so a test can make an expired one."""
        return self.issuer.issue(subject, audience, time.time() if now is None else now)

    def authorization(self, subject: str, audience: str, now: float | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject, audience, now)}"}

    def token_file(self, subject: str, audience: str) -> Path:
        """A token file as the runtime writes it for a sender (mode 0600)."""
        path = self.folder / "tokens" / token_file_name(subject, audience)
        path.parent.mkdir(exist_ok=True)
        path.write_text(self.token(subject, audience) + "\n")
        path.chmod(0o600)
        return path

    def env(self, audience: str) -> dict[str, str]:
        """The variables the runtime gives an instance whose audience is `audience`."""
        return {ISSUER_ENV: self.name, JWKS_ENV: str(self.jwks_path), AUDIENCE_ENV: audience}
