"""HAProxy's side of the data plane, as pure functions: the route map (splits as buckets),
the rendered configuration (checked by the real `haproxy -c`), the stats parser, and the
meter fed by sampled readings. Requests through a running HAProxy: test_serving_local.py."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

from knit.autoscaling.metrics import ConcurrencyMeter
from knit.gateway import haproxy
from knit.gateway.limits import GatewayLimits


def test_a_90_10_split_is_90_and_10_of_the_100_buckets_and_a_tag_host_gets_all_of_them():
    entries = haproxy.route_map(
        {
            "hello.default.localhost": {"hello-blue": 90, "hello-green": 10},
            "canary-hello.default.localhost": {"hello-green": 100},
        },
        {},
    )

    main = Counter(v for k, v in entries.items() if k.startswith("hello.default.localhost/"))
    tag = Counter(v for k, v in entries.items() if k.startswith("canary-hello."))
    assert main == {"hello-blue": 90, "hello-green": 10}
    assert tag == {"hello-green": 100}
    assert {int(k.rsplit("/", 1)[1]) for k in entries if k.startswith("hello.")} == set(range(100))


def test_a_cluster_local_port_is_keyed_by_its_number_and_an_empty_split_gets_no_entries():
    entries = haproxy.route_map({"gone.default.localhost": {}}, {40123: {"events-00002": 100}})

    assert len(entries) == 100
    assert entries["40123/0"] == entries["40123/99"] == "events-00002"


def test_a_revision_goes_to_its_backend_or_to_the_activator_as_its_mode_says():
    assert haproxy.mode_map({"hello-00001": False, "hello-00002": True}) == {
        "hello-00001": "rev-hello-00001",
        "hello-00002": "activator",
    }


def test_haproxys_own_errors_are_whole_responses_in_the_error_contract():
    page = haproxy.error_page(503)

    head, body = page.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body)["error"]["code"] == "revision_unavailable"


def test_stats_give_each_revisions_queue_and_its_instances_not_the_activator():
    text = (
        "# pxname,svname,qcur,qmax,scur,smax,slim,stot\n"
        "public,FRONTEND,,,3,6,9900,36\n"
        "rev-hello-00001,activator,0,0,1,1,,4\n"
        "rev-hello-00001,s1,0,0,1,1,1,21\n"
        "rev-hello-00001,s2,0,0,0,1,1,15\n"
        "rev-hello-00001,BACKEND,2,5,2,6,1,40\n"
    )

    stats = haproxy.parse_stats(text)

    assert stats == {
        "hello-00001": haproxy.BackendStats(2, {0: haproxy.ServerStats(1, 21), 1: haproxy.ServerStats(0, 15)})
    }


def test_a_meter_fed_readings_averages_them_over_time_and_counts_requests():
    meter = ConcurrencyMeter(now=0.0)

    meter.observe(0.0, in_flight=4, requests=10)
    meter.observe(0.5, in_flight=0, requests=5)

    assert meter.collect(1.0) == (2.0, 15)  # 4 for half the second, 0 for the other half


def test_the_rendered_configuration_is_one_haproxy_accepts(tmp_path):
    revisions = {
        "hello-00001": haproxy.RevisionBackend(
            "hello-00001", 1, 300.0, [haproxy.Server("127.0.0.1", 40001), None, None, None]
        ),
        "events-00001": haproxy.RevisionBackend("events-00001", 0, 30.0),
    }
    proxy = haproxy.Haproxy(tmp_path)
    config = haproxy.render_config(
        haproxy.Ports(public=48080, activator=48082),
        [48090, 48091],
        revisions,
        GatewayLimits(),
        60.0,
        proxy.admin_socket,
        proxy.routes_map,
        proxy.modes_map,
        proxy.errors,
    )
    proxy.write(config, {"hello.default.localhost/0": "hello-00001"}, haproxy.mode_map({"hello-00001": False}))

    checked = subprocess.run(["haproxy", "-c", "-f", str(proxy.config)], capture_output=True, text=True, timeout=30)

    assert checked.returncode == 0, checked.stderr
    assert "server s1 127.0.0.1:40001 maxconn 1\n" in config
    assert "server s2 127.0.0.1:1 maxconn 1 disabled\n" in config  # an empty slot
    assert "server s4 127.0.0.1:1 disabled\n" in config  # containerConcurrency 0: no maxconn
    assert "server activator 127.0.0.1:48082 backup" in config
    assert "bind 127.0.0.1:48090" in config and "bind 127.0.0.1:48091" in config


def test_a_revision_backend_doubles_its_slots_when_every_one_is_taken_or_still_draining():
    from knit.gateway.activator import RevisionBackend as ActivatorBackend
    from knit.runtimes.local.data_plane import ProxiedRevision

    parts = ProxiedRevision(haproxy.RevisionBackend("hello-00001", 0, 300.0), ActivatorBackend("hello-00001", 0))
    taken = []
    for port in range(4):
        index = parts.free_slot()
        parts.desired.slots[index] = haproxy.Server("127.0.0.1", 40000 + port)
        taken.append(index)
    parts.desired.slots[1] = None  # taken out, but HAProxy still has it (draining): not free yet
    parts.applied = [haproxy.Server("127.0.0.1", 40000 + i) for i in range(4)]

    assert taken == [0, 1, 2, 3]
    assert parts.free_slot() == 4
    assert len(parts.desired.slots) == len(parts.applied) == 8
