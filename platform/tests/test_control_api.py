"""The control API of a real `knit dev` against hostile callers: a web page in a real
browser, a foreign Host, no token, the wrong content type, broken JSON, and paths to files
it must not quote. Every refusal leaves the running Services as they were."""

from __future__ import annotations

import json
import os
import stat
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from knit.cli import main
from knit.client import ControlError, call
from knit.control_token import TOKEN_ENV, token_file, token_for
from knit.runtimes.local.control import MAX_BODY
from knit.testing.harness import KnitDev

pytestmark = pytest.mark.integration

HELLO = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello}
spec:
  template:
    spec:
      containers:
        - image: hello:dev
          command: [python, -m, http.server, "$(PORT)", --bind, "$(HOST)"]
"""
# Applying this would run a command as the user: it leaves a file behind to say so.
EVIL = """
apiVersion: serving.knative.dev/v1
kind: Service
metadata: {{name: evil}}
spec:
  template:
    spec:
      containers:
        - image: evil:dev
          command: [python, -c, "open({marker!r}, 'w').write('ran'); import time; time.sleep(60)"]
"""
SECRET = "hunter2-do-not-echo"
CHROMIUM = Path("/usr/bin/chromium")
# ../shared/RECIPES.md: Debian's Chromium on a closed network (as e2e/conftest.py launches it).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnitDev]:
    project = tmp_path_factory.mktemp("control")
    (project / "manifests").mkdir()
    (project / "manifests" / "hello.yaml").write_text(textwrap.dedent(HELLO))
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", TOKEN_ENV)}
    running = KnitDev(project / "manifests", cwd=project, env=env)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest whose command would leave `marker` behind if it ever ran."""
    marker = tmp_path / "evil-ran"
    manifest = tmp_path / "evil.yaml"
    manifest.write_text(textwrap.dedent(EVIL).format(marker=str(marker)))
    return manifest, marker


def service_names(dev: KnitDev) -> list[str]:
    return [service["name"] for service in dev.call("GET", "/services")["services"]]


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def token_of(dev: KnitDev) -> str:
    token = token_for(dev.control or "")
    assert token, f"no token file for {dev.control}"
    return token


def post(dev: KnitDev, path: str, data: bytes | str, content_type: str = "application/json", **headers: str):
    headers = {"Authorization": f"Bearer {token_of(dev)}", "Content-Type": content_type, **headers}
    return requests.post(f"{dev.control}{path}", data=data, headers=headers, timeout=30)


def assert_refused(response: requests.Response, status: int, code: str) -> str:
    """The contract's error shape, and `problems` as the knit commands read it; the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    assert body["problems"] == body["error"]["message"].split("\n")
    return body["error"]["message"]


# --- the token: written for the user only, found by the commands, removed on exit ------------------


def test_knit_dev_leaves_a_token_only_the_user_can_read_and_each_knit_dev_has_its_own(dev, tmp_path):
    path = token_file(port_of(dev.control))
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["url"] == dev.control and len(saved["token"]) >= 32
    assert any(str(path) in line for line in dev.lines if line.strip().startswith("control API"))

    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "hello.yaml").write_text(textwrap.dedent(HELLO))
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", TOKEN_ENV)}
    second = KnitDev(tmp_path / "manifests", cwd=tmp_path, env=env)
    try:
        second.wait_ready()
        second_path = token_file(port_of(second.control))
        assert json.loads(second_path.read_text())["token"] != saved["token"]
        assert service_names(second) == ["hello"] and service_names(dev) == ["hello"]  # each with its own token
    finally:
        assert second.stop() == 0
    assert not second_path.exists()
    assert path.exists()  # the other knit dev's is left alone


def test_the_token_is_sent_only_to_the_loopback_port_it_was_written_for(dev):
    assert token_for(dev.control) == token_of(dev)
    assert token_for(dev.control.replace("127.0.0.1", "localhost")) == token_of(dev)
    assert token_for(dev.control.replace("127.0.0.1", "attacker.example")) is None
    assert token_for("http://127.0.0.1:1") is None  # no knit dev there, no file
    assert token_for("http://attacker.example:1", {TOKEN_ENV: "given"}) == "given"  # the user's explicit choice


# --- who may call: Host and token --------------------------------------------------------------------


def test_a_foreign_host_is_refused_even_with_the_token(dev):
    for host in ("attacker.example", f"attacker.example:{port_of(dev.control)}", "127.0.0.1.nip.io"):
        for method, path in (("GET", "/services"), ("GET", "/healthz"), ("POST", "/apply")):
            response = requests.request(
                method, f"{dev.control}{path}", timeout=30, data=b'{"paths": []}',
                headers={"Host": host, "Authorization": f"Bearer {token_of(dev)}", "Content-Type": "application/json"},
            )  # fmt: skip
            message = assert_refused(response, 403, "host_not_allowed")
            assert f"got {host!r}" in message


def test_loopback_names_with_any_port_are_accepted(dev):
    for host in ("127.0.0.1", "localhost:9", "[::1]:8081", "LOCALHOST"):
        response = requests.get(f"{dev.control}/healthz", headers={"Host": host}, timeout=30)
        assert response.status_code == 200, host


def test_without_the_token_every_endpoint_but_healthz_and_metrics_is_401_naming_the_file(dev):
    where = str(token_file(port_of(dev.control)))
    for method, path in (("GET", "/services"), ("GET", "/services/default/hello"), ("POST", "/apply"),
                         ("POST", "/services/default/hello/traffic"), ("GET", "/nowhere")):  # fmt: skip
        response = requests.request(method, f"{dev.control}{path}", json={}, timeout=30)
        message = assert_refused(response, 401, "unauthorized")
        assert where in message and TOKEN_ENV in message
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{dev.control}/healthz", timeout=30).json()["status"] == "ok"
    assert "knit_gateway_requests_total" in requests.get(f"{dev.control}/metrics", timeout=30).text


def test_a_wrong_token_is_401_and_the_commands_say_why(dev, monkeypatch):
    response = requests.get(f"{dev.control}/services", headers={"Authorization": "Bearer not-it"}, timeout=30)
    assert "does not match" in assert_refused(response, 401, "unauthorized")
    monkeypatch.setenv(TOKEN_ENV, "not-it")
    with pytest.raises(ControlError, match="the token does not match the one in"):
        call(dev.control, "GET", "/services")


# --- what they may send: JSON of the documented shape -------------------------------------------------


def test_a_body_that_is_not_declared_json_is_415_and_nothing_is_applied(dev, evil):
    manifest, marker = evil
    body = json.dumps({"paths": [str(manifest)]})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        message = assert_refused(post(dev, "/apply", body, content_type), 415, "unsupported_media_type")
        assert "Content-Type: application/json" in message
    assert service_names(dev) == ["hello"]
    assert not marker.exists()


def test_malformed_json_and_wrong_shapes_are_400_naming_the_problem(dev):
    assert "not valid JSON" in assert_refused(post(dev, "/apply", b'{"paths": ['), 400, "malformed_json")
    assert "not valid JSON" in assert_refused(post(dev, "/apply", b"[" * 50000), 400, "malformed_json")
    assert "must be a JSON object" in assert_refused(post(dev, "/apply", b'["/a.yaml"]'), 400, "invalid_body")
    message = assert_refused(post(dev, "/apply", b'{"paths": "/a.yaml"}'), 400, "invalid_body")
    assert "paths must be a list of strings" in message and "got a string" in message
    message = assert_refused(post(dev, "/apply", b'{"path": ["/a.yaml"]}'), 400, "invalid_body")
    assert "'path' is not a field here" in message
    assert "at least one" in assert_refused(post(dev, "/apply", b"{}"), 400, "invalid_body")
    message = assert_refused(post(dev, "/services/default/hello/traffic", b'{"traffic": [50]}'), 400, "invalid_body")
    assert "traffic must be a list of strings" in message
    assert service_names(dev) == ["hello"]


def test_a_body_over_the_limit_is_413(dev):
    padding = "x" * (MAX_BODY + 1)
    message = assert_refused(post(dev, "/apply", json.dumps({"paths": [padding]})), 413, "body_too_large")
    assert str(MAX_BODY) in message


# --- what it reads: paths, reported without their content -------------------------------------------------


def test_errors_about_manifest_paths_name_the_path_and_the_kind_of_problem_never_the_content(dev, tmp_path):
    not_yaml = tmp_path / "id_rsa"
    not_yaml.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"password: {SECRET}\nlist: [unclosed, {SECRET}\n")
    not_a_manifest = tmp_path / "secrets.yaml"
    not_a_manifest.write_text(f"kind: {SECRET}\npassword: {SECRET}\n")
    binary = tmp_path / "blob.yaml"
    binary.write_bytes(b"\xff\xfe" + SECRET.encode())
    expected = {
        not_yaml: "not a YAML file; knit reads manifests from files ending in .yaml or .yml",
        broken: "not valid YAML: cannot be parsed at line 3, column 1",
        not_a_manifest: "1 problem in its objects",
        binary: "not UTF-8 text",
        tmp_path / "missing.yaml": "no such file or folder",
    }
    for path, kind in expected.items():
        response = post(dev, "/apply", json.dumps({"paths": [str(path)]}))
        message = assert_refused(response, 422, "invalid_manifests")
        assert message.startswith(f"{path}: ") and kind in message, message
        assert SECRET not in response.text
    message = assert_refused(post(dev, "/apply", json.dumps({"paths": ["relative.yaml"]})), 422, "invalid_manifests")
    assert "not an absolute path" in message
    assert service_names(dev) == ["hello"]


def test_the_commands_still_show_the_full_problems_of_the_users_own_files(dev, tmp_path, monkeypatch, capsys):
    """The control API hides content; `knit apply` reads the user's files itself first."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: serving.knative.dev/v1\nkind: Servce\nmetadata: {name: typo}\n")
    monkeypatch.setenv("KNIT_CONTROL_URL", dev.control)
    assert main(["apply", "-f", str(broken)]) == 2
    assert f"{broken}: kind: unknown kind 'Servce'" in capsys.readouterr().err
    assert service_names(dev) == ["hello"]


# --- a real browser: the cross-site form ---------------------------------------------------------------


class _Page(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker_site(dev, evil) -> Iterator[str]:
    """Another origin (its own port) whose page auto-submits a text/plain form to the control
    API: the body reads as JSON `{"paths": [evil], "x": "="}`, and needs no CORS preflight."""
    manifest, _ = evil
    name = json.dumps({"paths": [str(manifest)], "x": ""})[:-2]  # the form adds `=` + value
    page = f"""<!doctype html><title>cat pictures</title>
    <form id="f" method="post" enctype="text/plain" action="{dev.control}/apply">
      <input type="hidden" name='{name}' value='"}}'>
    </form>
    <script>document.getElementById("f").submit()</script>"""
    handler = type("AttackerPage", (_Page,), {"html": page.encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_web_page_cannot_apply_a_manifest_with_a_cross_site_form(dev, evil, attacker_site):
    from playwright.sync_api import sync_playwright

    _, marker = evil
    launch = {"args": CHROMIUM_ARGS, **({"executable_path": str(CHROMIUM)} if CHROMIUM.exists() else {})}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch)
        try:
            page = browser.new_page()
            with page.expect_response(lambda r: r.url == f"{dev.control}/apply", timeout=30_000) as answered:
                page.goto(attacker_site)
            response = answered.value
            assert response.request.method == "POST"
            assert response.request.headers["content-type"].startswith("text/plain")  # what a form can send
            assert response.status == 401
            assert response.json()["error"]["code"] == "unauthorized"
        finally:
            browser.close()
    assert service_names(dev) == ["hello"]
    assert not marker.exists()


def test_a_delete_naming_objects_badly_is_400_and_one_not_applied_is_404_and_nothing_is_deleted(dev):
    message = assert_refused(post(dev, "/delete", b'{"objects": ["hello", "Service//hello"]}'), 400, "invalid_body")
    assert message.splitlines() == [
        "'hello': name an object as KIND/NAMESPACE/NAME, e.g. Service/default/hello",
        "'Service//hello': name an object as KIND/NAMESPACE/NAME, e.g. Service/default/hello",
    ]
    assert "at least one" in assert_refused(post(dev, "/delete", b'{"objects": []}'), 400, "invalid_body")
    message = assert_refused(post(dev, "/delete", b'{"object": []}'), 400, "invalid_body")
    assert "'object' is not a field here" in message
    body = b'{"objects": ["Service/default/hello", "KafkaSource/default/nobody"]}'
    message = assert_refused(post(dev, "/delete", body), 404, "not_found")
    assert message.startswith("not applied: KafkaSource default/nobody;")
    assert service_names(dev) == ["hello"]
