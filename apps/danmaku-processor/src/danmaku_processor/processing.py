"""The processor's decision for one event: a submitted comment becomes the event to send.

Pure logic: takes the incoming CloudEvent, returns the outgoing one (published or
rejected, same id and sender); HTTP on either side is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping

from cloudevents.core.v1.event import CloudEvent

from danmaku_events import events
from danmaku_events.comment import InvalidComment, comment_from_dict, validate_room
from danmaku_processor.moderation import WordList, moderate

BLOCKED_WORD = "blocked_word"
BLOCKED_MESSAGE = "the comment contains a word this site does not allow; please rephrase it"


def process(event: CloudEvent, words: WordList) -> CloudEvent:
    """The event to send for a submitted comment: published (masked) or rejected.

    A comment that breaks a field rule or the word list gets a rejection; an event no
    answer can be addressed for raises InvalidEvent (the caller answers 400).
    """
    if event.get_type() != events.SUBMITTED:
        raise events.InvalidEvent(f"expected an event of type {events.SUBMITTED}; got {event.get_type()!r}")
    room = _reply_room(event)
    sender = events.sender_of(event)
    try:
        comment = comment_from_dict(event.get_data())
    except InvalidComment as error:
        return events.rejected(event.get_id(), room, error.code, error.message, sender)
    verdict = moderate(comment.text, words)
    if verdict.blocked:
        return events.rejected(comment.id, room, BLOCKED_WORD, BLOCKED_MESSAGE, sender)
    return events.published(comment.with_text(verdict.text), sender)


def _reply_room(event: CloudEvent) -> str:
    """The room an answer goes to; the web routes answers by room and id, so both must hold."""
    data = event.get_data()
    if not isinstance(data, Mapping):
        raise events.InvalidEvent(f"{events.SUBMITTED} data must be a comment JSON object; got {type(data).__name__}")
    if data.get("id") != event.get_id():
        raise events.InvalidEvent(f"comment id {data.get('id')!r} must equal the event id {event.get_id()!r}")
    try:
        return validate_room(data.get("room"))
    except InvalidComment as error:
        raise events.InvalidEvent(f"comment {error.message}") from error
