"""Settings: defaults, DANMAKU_WEB_* environment variables, and overrides."""

from __future__ import annotations

import pytest

from danmaku_web.settings import load


def test_defaults_apply_when_nothing_is_set():
    settings = load({})
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert settings["MAX_CONTENT_LENGTH"] == 4096
    assert settings["TRUSTED_PROXIES"] == 0


def test_prefixed_environment_variables_and_kafkas_standard_one_are_read_with_their_types():
    settings = load(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9092,kafka-1:9092",
            "DANMAKU_WEB_RATE_LIMIT_PER_SECOND": "2.5",
            "DANMAKU_WEB_TRUSTED_PROXIES": "1",
        }
    )
    assert settings["KAFKA_BOOTSTRAP_SERVERS"] == "kafka-0:9092,kafka-1:9092"
    assert settings["RATE_LIMIT_PER_SECOND"] == 2.5
    assert settings["TRUSTED_PROXIES"] == 1


def test_overrides_win_over_the_environment():
    settings = load({"DANMAKU_WEB_HISTORY_SIZE": "80"}, {"HISTORY_SIZE": 10, "TESTING": True})
    assert settings["HISTORY_SIZE"] == 10
    assert settings["TESTING"] is True


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"DANMAKU_WEB_RATE_LIMIT_BURST": "five"}, "DANMAKU_WEB_RATE_LIMIT_BURST must be an integer"),
        ({"DANMAKU_WEB_HISTORY_SIZE": "0"}, "DANMAKU_WEB_HISTORY_SIZE must be greater than 0"),
        ({"DANMAKU_WEB_TRUSTED_PROXIES": "-1"}, "DANMAKU_WEB_TRUSTED_PROXIES must not be negative"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_must_be(environ, message):
    with pytest.raises(ValueError, match=message):
        load(environ)
