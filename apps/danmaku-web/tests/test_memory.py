"""What the web keeps in memory stays bounded: room history and recently seen event ids."""

from __future__ import annotations

from danmaku_events.comment import Comment
from danmaku_web.dedup import RecentIds
from danmaku_web.history import History


def _comment(room: str, n: int) -> Comment:
    return Comment(id=f"{room}-{n}", room=room, text=f"comment {n}", ts=n)


def test_history_keeps_the_last_comments_of_each_room():
    history = History(size=2, rooms=10)
    for n in range(3):
        history.add(_comment("music", n))
    assert [comment.id for comment in history.recent("music")] == ["music-1", "music-2"]


def test_history_drops_the_least_recently_active_room():
    # given two rooms kept, music the least recently active
    history = History(size=5, rooms=2)
    history.add(_comment("music", 1))
    history.add(_comment("games", 1))
    history.add(_comment("games", 2))
    # when a third room becomes active
    history.add(_comment("news", 1))
    # then
    assert history.recent("music") == []
    assert len(history.recent("games")) == 2


def test_an_id_is_new_only_the_first_time():
    seen = RecentIds(size=100)
    assert seen.first_time("3f2a9c") is True
    assert seen.first_time("3f2a9c") is False


def test_only_the_most_recent_ids_are_remembered():
    seen = RecentIds(size=2)
    for key in ("a", "b", "c"):
        seen.first_time(key)
    assert seen.first_time("a") is True
    assert seen.first_time("c") is False
