"""A real Kubernetes API server for tests, with no Docker and no nodes: etcd, kube-apiserver
and (for garbage collection and Deployments → ReplicaSets → Pods) kube-controller-manager,
as processes on 127.0.0.1. Starts in a few seconds.

The binaries come from platform/kube/build.sh (built from Go modules, cached). Access is an
admin token over TLS with a certificate made here; RBAC is on, so what the controller's
ServiceAccount may do is what its Role says, as on a real cluster.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import signal
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from knit.host import HOST, free_port

START_TIMEOUT = 60.0  # seconds for the API server to answer /readyz (etcd's first start included)


@dataclass
class KubeApi:
    bin_dir: Path
    folder: Path
    controller_manager: bool = True  # garbage collection, Deployments → ReplicaSets → Pods
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    url: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.crt"

    def start(self) -> None:
        """Start them all and wait until the API server is ready; on any failure, stop what started."""
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _write_certificates(self.folder)
        (self.folder / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        self.url = f"https://{HOST}:{api_port}"
        self._start("etcd", [
            "--data-dir", str(self.folder / "etcd"), "--name", "test",
            "--listen-client-urls", f"http://{HOST}:{etcd_port}", "--advertise-client-urls", f"http://{HOST}:{etcd_port}",
            "--listen-peer-urls", f"http://{HOST}:{peer_port}", "--initial-advertise-peer-urls", f"http://{HOST}:{peer_port}",
            "--initial-cluster", f"test=http://{HOST}:{peer_port}", "--unsafe-no-fsync", "--log-level", "warn",
        ])  # fmt: skip
        self._start("kube-apiserver", [
            "--etcd-servers", f"http://{HOST}:{etcd_port}", "--bind-address", HOST, "--advertise-address", HOST,
            "--secure-port", str(api_port), "--tls-cert-file", str(self.folder / "serving.crt"),
            "--tls-private-key-file", str(self.folder / "serving.key"), "--client-ca-file", str(self.ca_file),
            "--token-auth-file", str(self.folder / "tokens.csv"), "--authorization-mode", "Node,RBAC",
            "--service-account-key-file", str(self.folder / "sa.pub"),
            "--service-account-signing-key-file", str(self.folder / "sa.key"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=true",
        ])  # fmt: skip
        self._write_kubeconfig()
        self._wait_ready()
        if self.controller_manager:
            self._start("kube-controller-manager", [
                "--kubeconfig", str(self.kubeconfig), "--leader-elect=false", "--secure-port=0",
                "--service-account-private-key-file", str(self.folder / "sa.key"),
                "--root-ca-file", str(self.ca_file), "--use-service-account-credentials=false",
                "--controllers", "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-persistentvolume-binder",
                "--concurrent-gc-syncs", "5",
            ])  # fmt: skip

    def _start(self, name: str, args: list[str]) -> None:
        binary = self.bin_dir / name
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing; build it with: platform/kube/build.sh {name}")
        log = (self.folder / f"{name}.log").open("wb")
        process = subprocess.Popen([str(binary), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._processes.append(process)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
            "current-context": "test",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _wait_ready(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token}"})
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for process in self._processes:
                if process.poll() is not None:
                    name = Path(str(process.args[0])).name
                    last = (self.folder / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
                    raise RuntimeError(f"{name} exited with {process.returncode}: {' / '.join(last)}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API server did not become ready in {START_TIMEOUT:g}s; see {self.folder}")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()


def _write_certificates(folder: Path) -> None:
    """A CA, the API server's serving certificate for 127.0.0.1, and the service-account key pair."""
    now = datetime.datetime.now(datetime.UTC)

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write_key(name: str, private: rsa.RSAPrivateKey) -> None:
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
        (folder / name).write_bytes(pem)

    ca_key, serving_key, sa_key = key(), key(), key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "knit-test-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    serving = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name).public_key(serving_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST)),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "serving.crt").write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    write_key("serving.key", serving_key)
    write_key("sa.key", sa_key)
    public = sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / "sa.pub").write_bytes(public)
