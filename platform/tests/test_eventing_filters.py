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


# --- Near misses: one character off, each dialect --------------------------------------------------

CREATED = {"type": "com.shop.order.created", "source": "/shop/eu", "id": "7"}


@pytest.mark.parametrize(
    ("expression", "passes"),
    [
        ({"exact": {"type": "com.shop.order.created"}}, True),
        ({"exact": {"type": "com.shop.order.create"}}, False),  # a prefix is not equal
        ({"exact": {"type": "Com.shop.order.created"}}, False),  # case counts
        ({"prefix": {"type": "com.shop.order.created"}}, True),  # the whole value is a prefix of itself
        ({"prefix": {"type": "om.shop"}}, False),
        ({"prefix": {"type": "com.shop.order.created."}}, False),  # one character longer
        ({"suffix": {"type": "com.shop.order.created"}}, True),
        ({"suffix": {"type": "create"}}, False),
        ({"suffix": {"type": "xcom.shop.order.created"}}, False),
        ({"prefix": {"subject": "o"}}, False),  # an attribute the event lacks matches nothing
        ({"all": [{"prefix": {"type": "com.shop"}}, {"exact": {"id": "8"}}]}, False),  # one part fails
        ({"any": [{"exact": {"id": "8"}}, {"exact": {"id": "9"}}]}, False),  # no part passes
        ({"any": [{"exact": {"id": "8"}}, {"exact": {"id": "7"}}]}, True),  # the last part passes
        ({"not": {"exact": {"id": "7"}}}, False),
        ({"not": {"exact": {"id": "8"}}}, True),
    ],
)
def test_given_a_dialect_then_a_value_one_character_off_does_not_pass(expression, passes):
    assert compile_trigger_filter(None, [expression])(CREATED) is passes


@pytest.mark.parametrize(
    ("attributes", "passes"),
    [
        ({"id": "7"}, True),
        ({"id": "77"}, False),
        ({"id": ""}, True),
        ({"subject": ""}, True),
        ({"subject": "7"}, False),
    ],
)
def test_given_attribute_filters_then_only_exact_values_or_the_empty_any_pass(attributes, passes):
    assert compile_trigger_filter(attributes, None)(CREATED) is passes


@pytest.mark.parametrize("value", ["exact", {"exact": {"id": "7"}}], ids=["a string", "an object"])
@pytest.mark.parametrize("dialect", ["all", "any"])
def test_given_all_or_any_with_something_other_than_a_list_then_it_is_refused(dialect, value):
    with pytest.raises(InvalidFilter, match=rf"^spec.filters\[0\].{dialect}: must be a list of one or more filter"):
        compile_trigger_filter(None, [{dialect: value}])


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            {"like": {"type": "x"}},
            "spec.filters[0]: unknown dialect 'like'; use one of exact, prefix, suffix, all, any, not",
        ),
        ({}, "spec.filters[0]: must have exactly one dialect of exact, prefix, suffix, all, any, not; got {}"),
    ],
)
def test_given_no_known_dialect_then_the_message_lists_the_dialects(expression, message):
    with pytest.raises(InvalidFilter) as raised:
        compile_trigger_filter(None, [expression])
    assert str(raised.value) == message
