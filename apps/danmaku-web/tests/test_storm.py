"""danmaku-storm's pure parts: its options and their limits, and the ledger's counting."""

from __future__ import annotations

import threading

import pytest

from danmaku_web.storm.ledger import Ledger, comment_number, comment_text, percentile, source_address
from danmaku_web.storm.options import DEFAULT_URL, OptionError, loopback_host, parse
from danmaku_web.storm.status import InstancesPoller, StatusError, default_source, reader, ready_instances
from knit.host import free_port

# --- options ----------------------------------------------------------------------------------


def test_the_defaults_storm_the_app_make_dev_serves():
    options = parse([])
    assert options.url == DEFAULT_URL == "http://danmaku-web.default.localhost:8080"
    assert (options.rate, options.seconds, options.rooms, options.viewers) == (20, 30, 2, 20)
    assert options.comments == 600
    assert options.room_names() == ["storm-1", "storm-2"]


def test_by_default_there_are_enough_posters_that_none_exceeds_the_apps_rate_per_address():
    # given danmaku-web's default of 1 comment per second per address
    assert parse(["--rate", "50"]).poster_count == 50
    assert parse(["--rate", "2.5"]).poster_count == 3
    assert parse(["--rate", "0.5", "--seconds", "4"]).poster_count == 1


def test_posters_given_are_taken_as_given():
    assert parse(["--rate", "50", "--posters", "5"]).poster_count == 5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--viewers", "10000"], r"--viewers must be from 1 to 3000 viewers .*; got 10000: for more, run several"),
        (["--viewers", "0"], r"--viewers must be from 1 to 3000 .*; got 0"),
        (["--rate", "100000"], r"--rate must be from 0.1 to 2000 comments/s .*; got 100000"),
        (["--rate", "nan"], r"--rate must be from 0.1 to 2000 .*; got nan"),
        (["--seconds", "3600"], r"--seconds must be from 1 to 600 s .*; got 3600: for longer load"),
        (["--drain", "-1"], r"--drain must be from 0 to 120 s .*; got -1: pick one in that range"),
        (["--rooms", "500"], r"--rooms must be from 1 to 100 rooms .*; got 500"),
        (["--posters", "5000"], r"--posters must be from 0 to 3000 .*; got 5000: .* or 0 for as many as --rate needs"),
    ],
)
def test_a_value_out_of_its_limits_is_refused_with_the_limits_the_value_and_what_to_do(argv, message):
    with pytest.raises(OptionError, match=message):
        parse(argv)


def test_more_rooms_than_viewers_is_refused():
    with pytest.raises(OptionError, match=r"--rooms \(5\) is more than --viewers \(3\).*raise --viewers or lower"):
        parse(["--rooms", "5", "--viewers", "3"])


def test_a_storm_that_sends_nothing_is_refused():
    with pytest.raises(OptionError, match=r"--rate 0.1 for --seconds 2 sends no comment; raise one of them"):
        parse(["--rate", "0.1", "--seconds", "2"])


def test_more_deliveries_per_second_than_the_tool_can_count_is_refused():
    # 2000 comments/s to 3000 viewers in 2 rooms: 3 million deliveries a second
    with pytest.raises(OptionError, match=r"3000000 deliveries per second .*lower --rate or --viewers, or raise"):
        parse(["--rate", "2000", "--viewers", "3000", "--rooms", "2"])


def test_a_room_prefix_the_app_would_refuse_is_refused():
    with pytest.raises(OptionError, match=r"--room-prefix 'Storm' makes room names such as 'Storm-2'"):
        parse(["--room-prefix", "Storm"])
    with pytest.raises(OptionError, match=r"1 to 32 lowercase letters"):
        parse(["--room-prefix", "a" * 31])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://danmaku.example.com", r"--url must be on this machine .*; got 'http://danmaku.example.com'"),
        ("https://danmaku-web.default.localhost", r"--url must be the app's http:// URL"),
        ("http://10.0.0.7:8080", r"--url must be on this machine"),
        ("ws://127.0.0.1:8080", r"--url must be the app's http:// URL"),
        ("http://danmaku-web.default.localhost:8080/r/lobby", r"--url is the app's base URL, without a path"),
        ("http://127.0.0.1:80x", r"has a port that is not a number"),
    ],
)
def test_a_url_off_this_machine_or_not_the_apps_base_is_refused(url, message):
    with pytest.raises(OptionError, match=message):
        parse(["--url", url])


def test_loopback_hosts_are_the_loopback_network_and_localhost_names():
    assert all(map(loopback_host, ["127.0.0.1", "127.3.2.1", "localhost", "danmaku-web.default.localhost"]))
    assert not any(map(loopback_host, ["10.0.0.1", "example.com", "localhost.example.com", "::1"]))


# --- comments, addresses, percentiles -----------------------------------------------------------


def test_a_comment_text_names_its_run_and_number_and_only_its_run_reads_it_back():
    text = comment_text("a1b2c3", 42)
    assert comment_number("a1b2c3", text) == 42
    assert comment_number("ffffff", text) is None
    assert comment_number("a1b2c3", "hello from a browser") is None
    assert comment_number("a1b2c3", None) is None


def test_source_addresses_count_up_from_127_0_0_2_and_skip_0_and_255():
    assert [source_address(i) for i in range(3)] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert source_address(252) == "127.0.0.254"
    assert source_address(253) == "127.0.1.1"
    addresses = [source_address(i) for i in range(6000)]
    assert len(set(addresses)) == 6000
    assert not any(address.endswith((".0", ".255")) for address in addresses)


def test_percentiles_are_nearest_rank_over_counted_samples():
    # 100 latencies: 90 of 30 ms, 9 of 80 ms, 1 of 400 ms
    latencies = {30: 90, 80: 9, 400: 1}
    assert percentile(latencies, 50) == 30
    assert percentile(latencies, 90) == 30
    assert percentile(latencies, 91) == 80
    assert percentile(latencies, 99) == 80
    assert percentile(latencies, 100) == 400
    assert percentile({12: 1}, 99) == 12
    assert percentile({}, 50) is None


# --- the ledger -----------------------------------------------------------------------------------


def accepted(ledger: Ledger, room: int, at: float, comment_id: str) -> int:
    number = ledger.sent(room, at)
    ledger.answered(number, {"ok": True, "id": comment_id})
    return number


def test_every_viewer_of_the_room_getting_every_accepted_comment_is_nothing_lost():
    # given two rooms of two viewers each, and a comment to each room
    ledger = Ledger([2, 2])
    first = accepted(ledger, 0, at=10.000, comment_id="c1")
    second = accepted(ledger, 1, at=10.020, comment_id="c2")
    # when all four viewers get theirs
    ledger.delivered(first, room=0, slot=0, at=10.030)
    ledger.delivered(first, room=0, slot=1, at=10.040)
    ledger.delivered(second, room=1, slot=0, at=10.070)
    ledger.delivered(second, room=1, slot=1, at=10.080)
    # then
    summary = ledger.summary(instances_peak=2)
    assert ledger.settled()
    assert summary.line() == (
        "sent 2, delivered 4, lost 0, duplicated 0, p50 40 ms, p99 60 ms, processor instances peak 2"
    )


def test_expected_deliveries_that_never_came_are_lost_and_extra_ones_duplicated():
    ledger = Ledger([3])
    number = accepted(ledger, 0, at=5.0, comment_id="c1")
    ledger.delivered(number, room=0, slot=0, at=5.1)
    ledger.delivered(number, room=0, slot=0, at=5.2)  # the same viewer again
    ledger.delivered(number, room=0, slot=2, at=5.3)
    assert not ledger.settled()
    summary = ledger.summary(instances_peak=None)
    assert (summary.delivered, summary.lost, summary.duplicated) == (2, 1, 1)
    assert summary.line().endswith("processor instances peak -")


def test_comments_the_app_refuses_are_counted_apart_not_as_lost():
    ledger = Ledger([2])
    accepted(ledger, 0, at=1.0, comment_id="c1")
    refused = ledger.sent(0, at=1.1)
    ledger.answered(refused, {"ok": False, "error": {"code": "rate_limited", "message": "wait 1 s"}})
    summary = ledger.summary(instances_peak=1)
    assert (summary.sent, summary.lost, summary.refused) == (2, 2, {"rate_limited": 1})
    assert summary.not_counted().startswith("not counted as lost: refused by the app 1 (rate_limited 1)")


def test_a_comment_moderation_rejects_is_not_expected_whether_the_rejection_comes_before_or_after_the_ack():
    ledger = Ledger([2])
    after = accepted(ledger, 0, at=1.0, comment_id="c1")
    ledger.rejected("c1")
    before = ledger.sent(0, at=1.1)
    ledger.rejected("c2")
    ledger.answered(before, {"ok": True, "id": "c2"})
    summary = ledger.summary(instances_peak=1)
    assert (summary.sent, summary.delivered, summary.lost, summary.rejected) == (2, 0, 0, 2)
    assert after != before and ledger.settled()


def test_a_send_never_answered_is_unanswered_and_keeps_the_drain_waiting():
    ledger = Ledger([1])
    ledger.sent(0, at=1.0)
    assert not ledger.settled()
    summary = ledger.summary(instances_peak=None)
    assert (summary.unanswered, summary.lost) == (1, 0)


def test_a_comment_its_poster_could_not_emit_is_not_sent_and_not_lost():
    ledger = Ledger([1])
    accepted(ledger, 0, at=1.0, comment_id="c1")
    ledger.unsent(ledger.sent(0, at=1.1))
    summary = ledger.summary(instances_peak=None)
    assert (summary.sent, summary.lost, summary.unsent) == (1, 1, 1)
    assert summary.not_counted().endswith("; not sent (poster's connection gone) 1")


def test_a_delivery_before_the_ack_counts_once_the_ack_comes():
    ledger = Ledger([1])
    number = ledger.sent(0, at=2.0)
    ledger.delivered(number, room=0, slot=0, at=2.05)
    ledger.answered(number, {"ok": True, "id": "c1"})
    ledger.answered(number, {"ok": False, "error": {"code": "late"}})  # one answer only
    summary = ledger.summary(instances_peak=None)
    assert (summary.delivered, summary.lost, summary.p50) == (1, 0, 50)


def test_a_delivery_to_a_viewer_of_another_room_is_stray_not_delivered():
    ledger = Ledger([1, 1])
    number = accepted(ledger, 0, at=1.0, comment_id="c1")
    ledger.delivered(number, room=1, slot=0, at=1.1)
    ledger.delivered(99, room=0, slot=0, at=1.1)  # never sent: ignored
    summary = ledger.summary(instances_peak=None)
    assert (summary.delivered, summary.lost, summary.stray) == (0, 1, 1)


def test_a_viewer_who_dropped_is_expected_nothing():
    ledger = Ledger([2])
    number = accepted(ledger, 0, at=1.0, comment_id="c1")
    ledger.delivered(number, room=0, slot=0, at=1.1)
    ledger.left(0, 1)
    assert ledger.settled()
    summary = ledger.summary(instances_peak=None)
    assert (summary.delivered, summary.lost, summary.viewers_left) == (1, 0, 1)


def test_each_tick_reports_the_second_since_the_last_one():
    ledger = Ledger([2])
    number = accepted(ledger, 0, at=0.5, comment_id="c1")
    ledger.delivered(number, room=0, slot=0, at=0.53)
    first = ledger.tick()
    ledger.delivered(number, room=0, slot=1, at=1.6)
    second = ledger.tick()
    assert (first.sent, first.delivered, first.p50, first.p99) == (1, 1, 30, 30)
    assert (second.sent, second.delivered, second.p50) == (0, 1, 1100)
    assert ledger.tick().p50 is None


# --- status -----------------------------------------------------------------------------------------


def test_ready_instances_add_up_over_the_services_revisions():
    described = {
        "name": "danmaku-processor",
        "revisions": [
            {"name": "danmaku-processor-00002", "actual_scale": 3, "desired_scale": 4},
            {"name": "danmaku-processor-00001", "actual_scale": 1, "desired_scale": 0},
        ],
    }
    assert ready_instances(described) == 4
    assert ready_instances({"name": "danmaku-processor", "revisions": []}) == 0


@pytest.fixture
def unused_port() -> int:
    """A port nothing listens on (it was free a moment ago)."""
    return free_port()


def test_without_a_status_source_there_is_nothing_to_read():
    assert reader("none", None) == (None, "no status source")


def test_a_knit_dev_that_does_not_answer_is_a_status_error_saying_where_it_was_asked(unused_port):
    read, where = reader("local", f"http://127.0.0.1:{unused_port}")
    assert where == f"knit dev's control API at http://127.0.0.1:{unused_port}"
    with pytest.raises(StatusError, match=f"no knit dev answered at http://127.0.0.1:{unused_port}"):
        read()


def test_no_kubeconfig_is_a_status_error_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(StatusError, match=r"no cluster to ask .*; run make demo, or pass --status none"):
        reader("kube", None)


def test_the_default_source_is_local_only_where_knit_devs_token_is(unused_port, monkeypatch):
    monkeypatch.delenv("KNIT_CONTROL_TOKEN", raising=False)
    assert default_source(f"http://127.0.0.1:{unused_port}") == "none"
    monkeypatch.setenv("KNIT_CONTROL_TOKEN", "a-token")
    assert default_source(f"http://127.0.0.1:{unused_port}") == "local"


def test_the_poller_keeps_the_latest_reading_the_peak_and_the_last_error():
    readings = iter([1, 3, 2])
    calls = []
    done = threading.Event()

    def read():
        calls.append(1)
        if len(calls) == 5:  # the fourth reading's error is kept by now: the poller reads one at a time
            done.set()
        value = next(readings, None)
        if value is None:
            raise StatusError("knit dev went away")
        return value

    poller = InstancesPoller(read, every=0.01)
    poller.start()
    assert done.wait(10)
    poller.stop()
    latest, peak, error = poller.sample()
    assert (peak, error) == (3, "knit dev went away")
    assert latest is None
