"""The commands talk to a running knit only through knit.client.Control, so any control (the local
API today, a Kubernetes API later) can stand behind them: here a fake one, recording the calls."""

import pytest

from knit import cli
from knit.admission import Context
from knit.client import Control, ControlError, LocalControl

STATUS = {
    "observedGeneration": 2,
    "conditions": [
        {"type": "ConfigurationsReady", "status": "True", "reason": "", "message": ""},
        {"type": "RoutesReady", "status": "True", "reason": "", "message": ""},
        {"type": "Ready", "status": "True", "reason": "", "message": ""},
    ],
    "latestCreatedRevisionName": "hello-00002",
    "latestReadyRevisionName": "hello-00002",
    "url": "http://hello.default.localhost:8080",
    "address": {"url": "http://127.0.0.1:4000", "audience": "serving.knit.dev/service/default/hello"},
    "traffic": [
        {"revisionName": "hello-00002", "percent": 90, "latestRevision": True},
        {"revisionName": "hello-00001", "percent": 10, "tag": "old", "url": "http://old-hello.default.localhost:8080"},
    ],
}
REVISION = {"percent": 0, "tags": [], "latest": False, "ready": True, "reason": "", "message": "",
            "actual_scale": 1, "desired_scale": 1, "container_concurrency": 0, "instances": []}  # fmt: skip
SERVICE = {
    "name": "hello",
    "namespace": "default",
    "status": STATUS,
    "revisions": [
        {**REVISION, "name": "hello-00002", "generation": 2, "percent": 90, "latest": True},
        {**REVISION, "name": "hello-00001", "generation": 1, "percent": 10, "tags": ["old"]},
    ],
}


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def admission_context(self) -> Context:
        return Context(frozenset({("Service", "default", "hello")}))

    def apply(self, paths):
        self.calls.append(("apply", [p.name for p in paths]))
        return ["Service default/hello: unchanged template"]

    def delete(self, objects):
        self.calls.append(("delete", list(objects)))
        if objects == ["Service/default/nobody"]:
            raise ControlError(["not applied: Service default/nobody"])
        return [f"{objects[0]}: deleted"]

    def services(self):
        return [SERVICE]

    def service(self, namespace, name):
        self.calls.append(("service", namespace, name))
        return SERVICE

    def edit_traffic(self, namespace, name, traffic, tags, untags):
        self.calls.append(("edit_traffic", namespace, name, traffic, tags, untags))
        return SERVICE

    def eventing(self):
        ready = {"type": "Ready", "status": "False", "reason": "SinkNotFound", "message": "spec.sink.ref: no Service"}
        sink = {**ready, "type": "SinkProvided"}
        deployed = {"type": "Deployed", "status": "True", "reason": "", "message": "ping -> http://127.0.0.1:9"}
        fine = {**deployed, "type": "Ready", "message": ""}
        return [
            {
                "kind": "KafkaSource",
                "namespace": "default",
                "name": "feed",
                "conditions": [sink, ready],
                "ready": ready,
            },
            {
                "kind": "PingSource",
                "namespace": "default",
                "name": "tick",
                "conditions": [deployed, fine],
                "ready": fine,
            },
        ]


@pytest.fixture
def control(monkeypatch):
    fake = FakeControl()
    monkeypatch.setattr(cli, "_control", lambda args: fake)
    return fake


def test_the_local_control_and_the_fake_are_both_controls():
    assert isinstance(LocalControl("http://127.0.0.1:1"), Control)
    assert isinstance(FakeControl(), Control)
    assert not isinstance(object(), Control)


def test_service_list_prints_each_service_from_its_status(control, capsys):
    assert cli.main(["service", "list"]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        ["NAME", "URL", "LATEST", "READY", "REASON"],
        ["hello", "http://hello.default.localhost:8080", "hello-00002", "True"],
    ]


def test_route_describe_prints_the_traffic_of_the_status(control, capsys):
    assert cli.main(["route", "describe", "hello"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["Address:", "http://127.0.0.1:4000"] in rows
    assert ["90%", "hello-00002", "yes"] in rows
    assert ["10%", "hello-00001", "old", "http://old-hello.default.localhost:8080"] in rows
    assert control.calls == [("service", "default", "hello")]


def test_service_update_sends_the_edits_and_prints_the_result(control, capsys):
    code = cli.main(["service", "update", "hello", "-n", "team", "--traffic", "@latest=90,hello-00001=10",
                     "--tag", "hello-00001=old", "--untag", "gone"])  # fmt: skip
    assert code == 0
    assert control.calls == [("edit_traffic", "team", "hello", ["@latest=90", "hello-00001=10"], ["hello-00001=old"],
                              ["gone"])]  # fmt: skip
    assert "Audience:    serving.knit.dev/service/default/hello" in capsys.readouterr().out


def test_delete_names_the_object_and_a_refusal_is_shown_with_exit_2(control, capsys):
    assert cli.main(["delete", "KafkaSource", "feed"]) == 0
    assert cli.main(["service", "delete", "nobody"]) == 2
    assert control.calls == [("delete", ["KafkaSource/default/feed"]), ("delete", ["Service/default/nobody"])]
    assert capsys.readouterr().err.splitlines() == [
        "knit: nothing was deleted:",
        "  not applied: Service default/nobody",
    ]


def test_eventing_list_shows_why_a_source_is_not_ready_and_what_a_ready_one_does(control, capsys):
    assert cli.main(["eventing", "list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[1] == ["KafkaSource", "feed", "False", "SinkNotFound", "spec.sink.ref:", "no", "Service"]
    assert rows[2] == ["PingSource", "tick", "True", "ping", "->", "http://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["delete"], "knit: name what to delete: -f FILES, or KIND NAME (e.g. `knit delete kafkasource feed`)"),
        (["delete", "-f", "x.yaml", "service", "hello"],
         "knit: name objects either with -f FILES or as KIND NAME, not both"),
        (["delete", "widget", "w"], "knit: unknown kind 'widget'; knit knows Service, KafkaSource, SinkBinding, "
                                     "PingSource, Broker, Trigger, ConfigMap"),
    ],
)  # fmt: skip
def test_a_delete_that_names_nothing_clearly_is_refused_with_exit_2_and_deletes_nothing(control, capsys, argv, message):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert control.calls == []


def test_delete_by_kind_ignores_the_kinds_case_and_uses_the_namespace(control):
    assert cli.main(["delete", "pingSOURCE", "tick", "-n", "team"]) == 0
    assert control.calls == [("delete", ["PingSource/team/tick"])]
