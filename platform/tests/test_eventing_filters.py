"""Trigger filters: a table of events against each dialect, as Knative evaluates them."""

import pytest

from knit.eventing.filters import InvalidFilter, compile_trigger_filter

ORDER = {"type": "com.shop.order.created", "source": "/shop/eu", "id": "1", "region": "eu"}
REFUND = {"type": "com.shop.refund.created", "source": "/shop/us", "id": "2"}
PING = {"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/default/pingsources/tick", "id": "3"}
EVENTS = {"order": ORDER, "refund": REFUND, "ping": PING}


@pytest.mark.parametrize(
    ("attributes", "filters", "passes"),
    [
        (None, None, {"order", "refund", "ping"}),
        ({"type": "com.shop.order.created"}, None, {"order"}),
        ({"type": "com.shop.order.created", "source": "/shop/us"}, None, set()),
        ({"type": ""}, None, {"order", "refund", "ping"}),  # "" is Knative's "any"
        ({"region": ""}, None, {"order", "refund", "ping"}),
        ({"region": "eu"}, None, {"order"}),
        (None, [{"exact": {"type": "com.shop.refund.created"}}], {"refund"}),
        (None, [{"prefix": {"type": "com.shop."}}], {"order", "refund"}),
        (None, [{"suffix": {"type": ".created"}}], {"order", "refund"}),
        (None, [{"suffix": {"source": "/eu"}}, {"prefix": {"type": "com.shop"}}], {"order"}),
        (None, [{"all": [{"prefix": {"type": "com.shop."}}, {"exact": {"region": "eu"}}]}], {"order"}),
        (None, [{"any": [{"exact": {"id": "2"}}, {"exact": {"id": "3"}}]}], {"refund", "ping"}),
        (None, [{"not": {"prefix": {"type": "com.shop."}}}], {"ping"}),
        (None, [{"not": {"exact": {"region": "eu"}}}], {"refund", "ping"}),  # a missing attribute is not "eu"
        (
            None,
            [{"any": [{"not": {"prefix": {"type": "com"}}}, {"all": [{"exact": {"id": "2"}}]}]}],
            {"refund", "ping"},
        ),
        # When filters are given, the attributes filter is ignored, as in Knative.
        ({"type": "com.shop.order.created"}, [{"exact": {"id": "3"}}], {"ping"}),
    ],
)
def test_each_dialect_passes_exactly_the_events_it_describes(attributes, filters, passes):
    matches = compile_trigger_filter(attributes, filters)
    assert {name for name, event in EVENTS.items() if matches(event)} == passes


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([{"exact": {}}], r"spec.filters\[0\].exact: must map one or more attribute names to strings"),
        ([{"exact": {"type": 7}}], r"spec.filters\[0\].exact.type: must be a non-empty string; got 7"),
        ([{"all": []}], r"spec.filters\[0\].all: must be a list of one or more filter expressions"),
        ([{"any": [{"exact": {"a": "b"}}, {"nope": {}}]}], r"spec.filters\[0\].any\[1\]: unknown dialect 'nope'"),
        ([{"exact": {"a": "b"}, "prefix": {"a": "b"}}], r"spec.filters\[0\]: must have exactly one dialect"),
        ([{"cesql": "type = 'x'"}], r"spec.filters\[0\].cesql: CESQL is not supported"),
        ([{"not": {"suffix": {"type": ""}}}], r"spec.filters\[0\].not.suffix.type: must be a non-empty string"),
    ],
)
def test_a_malformed_filter_names_its_path(filters, message):
    with pytest.raises(InvalidFilter, match=message):
        compile_trigger_filter(None, filters)
