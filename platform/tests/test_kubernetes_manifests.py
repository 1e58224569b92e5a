"""Every Kubernetes object knit ships or makes, checked against Kubernetes 1.34's own schemas
with unknown fields refused (kubernetes-validate, strict): the install manifests, and what
the controller makes for the danmaku app (its Revisions' Deployments and Services, the
KafkaSource's dispatcher, identities and keys). A misspelt field would otherwise be dropped
by the API server without a word. The custom resources are checked against knit's CRDs by
the API server itself (test_kubernetes_controller.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from knit.admission import load_manifests
from knit.control.desired import DISPATCHER, PING, AdapterProcess, Oidc, desired_eventing, instance_env
from knit.new import TEMPLATES, create
from knit.resources.model import Service, SinkBinding
from knit.runtimes.kubernetes import objects
from knit.serving.revisions import revision_for

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = "1.34.0"  # the kind cluster's (platform/kube/build.sh builds v1.34.4)
BOOTSTRAP = "kafka.kafka.svc.cluster.local:9092"
OWNER = objects.Owner("serving.knit.dev/v1", "Revision", "x", "uid-x")


def address_of(kind: str, namespace: str, name: str) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local"


def built_in(document: dict[str, Any]) -> bool:
    return "knit.dev" not in document["apiVersion"]


def install_documents() -> list[dict[str, Any]]:
    files = sorted((REPO / "manifests/platform").glob("*.yaml"))
    return [doc for file in files for doc in yaml.safe_load_all(file.read_text()) if doc and built_in(doc)]


def app_objects(folder: Path = REPO / "manifests/app") -> list[dict[str, Any]]:
    """What the controller makes for an app's manifests (with sender identity on), as it makes it."""
    manifests = load_manifests([folder])
    oidc = Oidc("https://kubernetes.default.svc.cluster.local", objects.JWKS_FILE, lambda _, a: objects.token_path(a))
    made: list[dict[str, Any]] = [objects.jwks_config_map("default", {"keys": []})]
    bindings = [r for r in manifests.resources if isinstance(r, SinkBinding)]
    for service in manifests.of_kind(Service):
        revision = revision_for(service, [])
        assert revision is not None
        binding = next((b for b in bindings if b.spec.subject.name == service.name), None)
        env = instance_env(revision, BOOTSTRAP, binding, address_of, oidc)
        audiences = [env["K_SINK_AUDIENCE"]] if "K_SINK_AUDIENCE" in env else []
        deployment = objects.revision_deployment(revision, env, 1, OWNER)
        made.append(objects.with_identity(deployment, None, audiences, jwks=True))
        made.append(objects.revision_service(revision, OWNER))
        made.append(objects.service_address(service, OWNER, "knit-gateway.knit-system"))
        if revision.template.spec.service_account_name:
            made.append(objects.service_account(revision.template.spec.service_account_name, "default", None))
    world = desired_eventing(manifests.resources, lambda *_: True, BOOTSTRAP, address_of, oidc)
    for adapter in world.adapters.values():
        for process in adapter.processes:
            assert process.module in (DISPATCHER[0], PING[0])
            deployment = objects.adapter_deployment(process, "knit/platform:dev", "default", OWNER)
            made.append(objects.with_identity(deployment, "sender", ["aud"], jwks=False))
            made.append(objects.service_account("sender", "default", OWNER))
    ingress = AdapterProcess("knit-broker-ingress", "knit.eventing.ingress", "KNIT_INGRESS", "{}")
    made += [objects.adapter_deployment(ingress, "knit/platform:dev", "knit-system", None)]
    made += [objects.adapter_service(ingress, "knit-system")]
    return made


def test_the_app_needs_what_is_checked_here() -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in app_objects()]
    assert ("Deployment", "kafkasource-danmaku-comments") in kinds
    assert ("Deployment", "danmaku-processor-00001-deployment") in kinds
    assert ("ServiceAccount", "danmaku-processor") in kinds
    assert {k for k, _ in kinds} >= {"Deployment", "Service", "ConfigMap", "ServiceAccount"}
    assert {d["kind"] for d in install_documents()} >= {"Deployment", "ClusterRole", "Namespace", "Service"}


@pytest.mark.parametrize(
    "obj",
    [*install_documents(), *app_objects()],
    ids=lambda o: f"{o['kind']}-{o['metadata']['name']}",
)
def test_each_object_is_valid_kubernetes_with_no_unknown_field(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_a_misspelt_field_is_caught() -> None:
    deployment = objects.adapter_deployment(AdapterProcess("a", "m", "C", "{}"), "knit/platform:dev", "default", None)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolice"):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


@pytest.mark.parametrize("template", TEMPLATES)
def test_what_knit_makes_for_an_app_from_each_template_is_valid_kubernetes(knit_templates, tmp_path, template):
    app = create("my-app", template, tmp_path / "my-app", source=knit_templates).path
    made = app_objects(app / "manifests")
    assert ("Deployment", "my-app-00001-deployment") in [(o["kind"], o["metadata"]["name"]) for o in made]
    for obj in made:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
