"""Topic administration the runtimes need."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

DEFAULT_PARTITIONS = 4


def ensure_topics(bootstrap_servers: str, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create the topics that do not exist yet, so a consumer group gets its partitions at
    once instead of after a metadata refresh. Existing topics are left as they are."""
    wanted = sorted(set(topics))
    if not wanted:
        return
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","), client_id="knit-admin")
    try:
        missing = [t for t in wanted if t not in set(admin.list_topics())]
        for topic in missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created by someone else meanwhile
                admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
