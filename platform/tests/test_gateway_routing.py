"""From Host to Revision: Knative's host names, exact percent splits, tags, cluster-local Services."""

from collections import Counter

from knit.gateway.routing import RouteTable, Split


def test_a_split_gives_each_revision_exactly_its_share():
    split = Split({"hello-00001": 90, "hello-00002": 10})
    picks = Counter(split.pick() for _ in range(2000))
    assert picks == {"hello-00001": 1800, "hello-00002": 200}


def test_a_split_interleaves_rather_than_sending_bursts():
    split = Split({"a": 50, "b": 50})
    assert [split.pick() for _ in range(6)] == ["a", "b", "a", "b", "a", "b"]


def test_an_empty_split_picks_nothing():
    assert Split({}).pick() is None


def test_a_service_is_reached_at_service_namespace_domain_with_any_port():
    table = RouteTable()
    table.set_route("hello", "default", {"hello-00001": 100}, {}, cluster_local=False)
    for host in ("hello.default.localhost", "hello.default.localhost:8080", "HELLO.default.localhost."):
        route = table.match(host)
        assert route is not None and route.service == "hello", host
    assert table.match("hello.other.localhost") is None
    assert table.match("127.0.0.1:8080") is None


def test_a_tag_gets_a_host_of_its_own_pointing_at_its_revision():
    table = RouteTable()
    table.set_route("hello", "default", {"hello-00001": 100}, {"canary": "hello-00002"}, cluster_local=False)
    assert table.match("canary-hello.default.localhost:8080").split.pick() == "hello-00002"
    assert table.known_hosts() == ["canary-hello.default.localhost", "hello.default.localhost"]


def test_a_changed_route_replaces_the_old_hosts():
    table = RouteTable()
    table.set_route("hello", "default", {"hello-00001": 100}, {"old": "hello-00001"}, cluster_local=False)
    table.set_route("hello", "default", {"hello-00002": 100}, {}, cluster_local=False)
    assert table.known_hosts() == ["hello.default.localhost"]
    assert table.match("hello.default.localhost").split.pick() == "hello-00002"


def test_a_cluster_local_service_has_no_public_host_but_a_service_route():
    table = RouteTable()
    table.set_route("worker", "default", {"worker-00001": 100}, {"t": "worker-00001"}, cluster_local=True)
    assert table.match("worker.default.localhost") is None
    assert table.known_hosts() == []
    assert table.service_route("worker", "default").split.pick() == "worker-00001"


def test_another_domain_can_be_used():
    table = RouteTable(domain="example.com")
    table.set_route("hello", "shop", {"hello-00001": 100}, {}, cluster_local=False)
    assert table.host_of("hello", "shop", "beta") == "beta-hello.shop.example.com"
    assert table.match("hello.shop.example.com") is not None


def test_given_a_route_set_again_with_the_same_split_then_the_round_robin_goes_on_where_it_was():
    table = RouteTable()
    table.set_route("hello", "default", {"a": 50, "b": 50}, {}, cluster_local=False)
    assert table.match("hello.default.localhost").split.pick() == "a"
    table.set_route("hello", "default", {"a": 50, "b": 50}, {}, cluster_local=False)
    assert table.match("hello.default.localhost").split.pick() == "b"


def test_given_a_route_that_was_not_ready_when_it_becomes_ready_with_the_same_split_then_the_reason_is_gone():
    table = RouteTable()
    table.set_route("hello", "default", {}, {}, cluster_local=False, not_ready="no ready Revision yet")
    assert table.match("hello.default.localhost").not_ready == "no ready Revision yet"
    table.set_route("hello", "default", {}, {}, cluster_local=False)
    assert table.match("hello.default.localhost").not_ready == ""


def test_given_a_route_then_its_entry_names_service_namespace_and_visibility():
    table = RouteTable()
    table.set_route("worker", "jobs", {"worker-00001": 100}, {}, cluster_local=True, not_ready="")
    entry = table.service_route("worker", "jobs")
    assert (entry.service, entry.namespace, entry.cluster_local, entry.not_ready) == ("worker", "jobs", True, "")
    table.set_route("hello", "default", {"hello-00001": 100}, {"beta": "hello-00001"}, cluster_local=False)
    tagged = table.match("beta-hello.default.localhost")
    assert (tagged.service, tagged.namespace, tagged.cluster_local) == ("hello", "default", False)


def test_given_a_removed_service_then_its_hosts_and_route_are_gone_and_others_stay():
    table = RouteTable()
    table.set_route("hello", "default", {"hello-00001": 100}, {"beta": "hello-00001"}, cluster_local=False)
    table.set_route("cart", "default", {"cart-00001": 100}, {}, cluster_local=False)
    table.remove_service("hello", "default")
    assert table.known_hosts() == ["cart.default.localhost"]
    assert table.service_route("hello", "default") is None
    assert table.service_route("cart", "default") is not None


def test_given_a_host_with_two_port_separators_then_it_matches_no_route():
    table = RouteTable()
    table.set_route("hello", "default", {"hello-00001": 100}, {}, cluster_local=False)
    assert table.match("hello.default.localhost:8080:80") is None


def test_given_a_service_that_has_no_route_when_it_is_removed_then_nothing_happens():
    table = RouteTable()
    table.set_route("hello", "default", {"hello-00001": 100}, {}, cluster_local=False)
    table.remove_service("never-applied", "default")
    assert table.known_hosts() == ["hello.default.localhost"]
