"""The Kubernetes runtime's pure parts: the objects it makes, CRD schemas, host names."""

from __future__ import annotations

from typing import Any

import pytest

from knit.control.desired import AdapterProcess
from knit.gateway.routing import cluster_local_service
from knit.resources.crds import DEFINITIONS, all_crds, spec_schema
from knit.resources.loading import InvalidManifests
from knit.resources.model import KafkaSource, PingSource, Service, Spec
from knit.runtimes.kubernetes import objects
from knit.runtimes.kubernetes.controller import admitted, invalid_status
from knit.serving.revisions import revision_for

OWNER = objects.Owner("serving.knit.dev/v1", "Revision", "web-00001", "uid-1")


def web(**container: Any) -> Service:
    return Service.model_validate(
        {
            "apiVersion": "serving.knit.dev/v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"template": {"spec": {"containers": [{"image": "web:1", **container}]}}},
        }
    )


def deployment(**container: Any) -> dict[str, Any]:
    revision = revision_for(web(**container), [])
    assert revision is not None
    return objects.revision_deployment(revision, {"K_REVISION": revision.name}, 0, OWNER)


def test_a_revision_deployment_runs_its_container_as_written_with_the_platform_contract() -> None:
    made = deployment(command=["gunicorn"], args=["app:app"], env=[{"name": "MODE", "value": "x"}])
    assert made["metadata"]["name"] == "web-00001-deployment"
    assert made["metadata"]["namespace"] == "shop"
    assert made["metadata"]["ownerReferences"] == [OWNER.reference()]
    assert made["spec"]["selector"] == {"matchLabels": {objects.REVISION_LABEL: "web-00001"}}
    pod = made["spec"]["template"]
    assert pod["metadata"]["labels"][objects.REVISION_LABEL] == "web-00001"
    container = pod["spec"]["containers"][0]
    assert (container["command"], container["args"]) == (["gunicorn"], ["app:app"])
    env = [(var["name"], var["value"]) for var in container["env"]]
    assert env == [("MODE", "x"), ("PORT", "8080"), ("HOST", "0.0.0.0"), ("K_REVISION", "web-00001")]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["terminationGracePeriodSeconds"] == 300
    assert "serviceAccountName" not in pod["spec"]


def test_the_container_port_and_probes_follow_knatives_defaults() -> None:
    made = deployment(ports=[{"containerPort": 9000}], readinessProbe={"httpGet": {"path": "/ready"}},
                      livenessProbe={"tcpSocket": {"port": 9001}})  # fmt: skip
    container = made["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 9000, "scheme": "HTTP"}
    assert container["readinessProbe"]["periodSeconds"] == 1  # none given: every second, not every 10
    given = deployment(readinessProbe={"httpGet": {"path": "/"}, "periodSeconds": 5})
    assert given["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 5
    assert container["livenessProbe"]["tcpSocket"] == {"port": 9001}
    assert container["livenessProbe"]["periodSeconds"] == 10  # Kubernetes' default: restarts are not hurried
    assert ("PORT", "9000") in [(v["name"], v["value"]) for v in container["env"]]
    assert "command" not in container  # the image's entrypoint


def test_a_revision_service_selects_its_pods() -> None:
    revision = revision_for(web(ports=[{"containerPort": 9000}]), [])
    assert revision is not None
    made = objects.revision_service(revision, OWNER)
    assert made["metadata"]["name"] == "web-00001"
    assert made["spec"]["selector"] == {objects.REVISION_LABEL: "web-00001"}
    assert made["spec"]["ports"][0]["targetPort"] == 9000


def slice_of(revision: str | None, endpoints: list[dict[str, Any]], port: int | None = 8080) -> dict[str, Any]:
    labels = {objects.REVISION_LABEL: revision} if revision else {}
    return {
        "metadata": {"name": "s", "namespace": "shop", "labels": labels},
        "endpoints": endpoints,
        "ports": [{"port": port}] if port else None,
    }


def test_ready_endpoints_are_ready_and_not_terminating_pods_of_a_revision() -> None:
    slices = [
        slice_of("web-00001", [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "targetRef": {"name": "pod-a"}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": False}, "targetRef": {"name": "pod-b"}},
            {"addresses": ["10.0.0.3"], "conditions": {"ready": True, "terminating": True}},
            {"addresses": ["10.0.0.4"], "conditions": {}},  # unknown counts as ready, as Kubernetes says
        ]),
        slice_of(None, [{"addresses": ["10.0.0.9"], "conditions": {"ready": True}}]),
        slice_of("web-00002", [{"addresses": ["10.0.0.5"], "conditions": {"ready": True}}], port=None),
    ]  # fmt: skip
    assert objects.ready_endpoints(slices) == {
        "web-00001": {"10.0.0.1:8080": ("pod-a", 8080), "10.0.0.4:8080": ("10.0.0.4", 8080)}
    }


def test_derived_objects_are_owned_by_their_service_and_carry_no_status() -> None:
    owner = objects.Owner("serving.knit.dev/v1", "Service", "web", "uid-s")
    rendered = [{"apiVersion": "v", "kind": "Route", "metadata": {"name": "web", "namespace": "shop", "generation": 3},
                 "spec": {}, "status": {"url": "x"}}]  # fmt: skip
    (route,) = objects.derived(rendered, owner)
    assert "status" not in route and "generation" not in route["metadata"]
    assert route["metadata"]["ownerReferences"] == [owner.reference()]
    assert route["metadata"]["labels"]["serving.knit.dev/service"] == "web"


# --- CRDs -----------------------------------------------------------------------------------------


def test_every_kind_people_apply_has_a_crd_and_the_derived_serving_kinds_too() -> None:
    names = {crd["metadata"]["name"] for crd in all_crds()}
    assert names == {
        "services.serving.knit.dev", "configurations.serving.knit.dev", "revisions.serving.knit.dev",
        "routes.serving.knit.dev", "kafkasources.sources.knit.dev", "pingsources.sources.knit.dev",
        "sinkbindings.sources.knit.dev", "brokers.eventing.knit.dev", "triggers.eventing.knit.dev",
    }  # fmt: skip
    kafka = next(d for d in all_crds() if d["spec"]["names"]["kind"] == "KafkaSource")
    assert [(v["name"], v["storage"]) for v in kafka["spec"]["versions"]] == [("v1", True), ("v1beta1", False)]
    assert len(DEFINITIONS) == len(names)


def test_schemas_are_structural_optional_fields_nullable_and_durations_plain_strings() -> None:
    schema = spec_schema(KafkaSource.model_fields["spec"].annotation)  # type: ignore[arg-type]
    delivery = schema["properties"]["delivery"]
    assert delivery["nullable"] is True and delivery["type"] == "object"
    assert delivery["properties"]["backoffDelay"] == {"type": "string", "nullable": True}
    assert delivery["properties"]["backoffPolicy"]["enum"] == ["exponential", "linear"]
    assert schema["properties"]["consumers"] == {"type": "integer", "minimum": 1}

    def walk(node: dict[str, Any]) -> None:
        assert "$ref" not in node and "anyOf" not in node and "default" not in node and "title" not in node
        assert (
            node.get("type")
            or node.get("x-kubernetes-preserve-unknown-fields")
            or node.get("x-kubernetes-int-or-string")
        ), node
        for child in (*node.get("properties", {}).values(), node.get("items"), node.get("additionalProperties")):
            if isinstance(child, dict):
                walk(child)

    for crd in all_crds():
        walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def test_free_form_and_quantity_fields() -> None:
    ping = spec_schema(PingSource.model_fields["spec"].annotation)  # type: ignore[arg-type]
    assert ping["properties"]["schedule"] == {"type": "string", "minLength": 1}
    service = spec_schema(Service.model_fields["spec"].annotation)  # type: ignore[arg-type]
    container = service["properties"]["template"]["properties"]["spec"]["properties"]["containers"]["items"]
    limits = container["properties"]["resources"]["properties"]["limits"]
    assert limits == {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}}


def test_a_schema_knit_cannot_express_is_an_error_not_a_guess() -> None:
    class Odd(Spec):
        value: int | list[int]

    with pytest.raises(ValueError, match="no structural schema"):
        spec_schema(Odd)


# --- names and admission ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("web.shop.svc.cluster.local", ("web", "shop")),
        ("web.shop.svc.cluster.local:80", ("web", "shop")),
        ("WEB.shop.svc.", ("web", "shop")),
        ("web.shop", ("web", "shop")),
        ("web.shop.localhost", None),
        ("web", None),
        ("a.b.c.svc.cluster.local", None),
        (".shop.svc", None),
    ],
)
def test_cluster_local_names(host: str, expected: tuple[str, str] | None) -> None:
    assert cluster_local_service(host) == expected


def test_a_service_from_the_api_is_admitted_with_the_messages_knit_apply_gives() -> None:
    obj = {
        "apiVersion": "serving.knit.dev/v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "u", "generation": 2, "managedFields": []},
        "spec": {"template": {"metadata": {"annotations": {"autoscaling.knit.dev/target": "-1"}},
                              "spec": {"containers": [{"image": "web:1"}]}}},
        "status": {"observedGeneration": 1},
    }  # fmt: skip
    with pytest.raises(InvalidManifests) as refused:
        admitted(obj)
    (problem,) = refused.value.problems
    assert problem.startswith("Service shop/web (Service web): spec.template.metadata.annotations")
    status = invalid_status(2, "InvalidSpec", refused.value.problems)
    assert status["observedGeneration"] == 2
    assert status["conditions"][0] == {"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": problem}
    obj["spec"]["template"]["metadata"] = {}
    assert admitted(obj).namespace == "shop"


def test_identity_gives_a_pod_one_projected_token_per_audience_and_the_issuers_keys() -> None:
    audiences = ["serving.knit.dev/service/shop/web", "eventing.knit.dev/broker/shop/default"]
    made = objects.with_identity(deployment(), "sender", [*audiences, audiences[0]], jwks=True)
    pod = made["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "sender"
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(volumes) == 3  # a token per audience (the repeated one once) and the keys
    for audience in audiences:
        folder, _, file = objects.token_path(audience).rpartition("/")
        token = volumes[mounts[folder]["name"]]["projected"]["sources"][0]["serviceAccountToken"]
        assert token == {"audience": audience, "expirationSeconds": objects.TOKEN_SECONDS, "path": file}
        assert mounts[folder]["readOnly"] is True
    keys = volumes[mounts[objects.OIDC_DIR]["name"]]
    assert keys["configMap"]["name"] == objects.OIDC_CONFIG_MAP
    assert objects.JWKS_FILE.startswith(objects.OIDC_DIR + "/")
    assert len({objects.token_path(a) for a in audiences}) == 2
    assert "volumes" not in deployment()["spec"]["template"]["spec"]  # the input is left as it was


def test_without_audiences_or_keys_a_pod_only_gets_its_service_account() -> None:
    made = objects.with_identity(deployment(), None, [], jwks=False)
    assert made == deployment()
    assert (
        objects.with_identity(deployment(), "a", [], jwks=False)["spec"]["template"]["spec"]["serviceAccountName"]
        == "a"
    )


def test_an_adapter_runs_knits_image_with_its_configuration_and_only_a_broker_ingress_is_addressed() -> None:
    process = AdapterProcess("kafkasource/feed/2", "knit.eventing.dispatcher", "KNIT_KAFKASOURCE", '{"a": 1}')
    made = objects.adapter_deployment(process, "knit/platform:dev", "shop", OWNER)
    assert made["metadata"]["name"] == "kafkasource-feed-2"
    assert made["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    pod = made["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "knit.eventing.dispatcher"]
    env = {var["name"]: var["value"] for var in container["env"]}
    assert env == {"KNIT_KAFKASOURCE": '{"a": 1}', "PORT": "8080", "HOST": "0.0.0.0"}
    assert container["securityContext"] == objects.RESTRICTED_CONTAINER
    assert "ownerReferences" not in objects.adapter_deployment(process, "i", "knit-system", None)["metadata"]
    service = objects.adapter_service(process, "knit-system")
    assert service["spec"]["selector"] == made["spec"]["selector"]["matchLabels"]
