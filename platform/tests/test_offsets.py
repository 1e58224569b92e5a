"""The commit point of a partition: never past a record that has not finished."""

from knit.eventing.offsets import PartitionOffsets


def test_nothing_is_committable_before_a_record_finished():
    offsets = PartitionOffsets()
    offsets.started(7)
    assert offsets.committable() is None


def test_in_order_completion_moves_the_commit_point_past_each_record():
    offsets = PartitionOffsets()
    for offset in (7, 8, 9):
        offsets.started(offset)
    offsets.finished(7)
    assert offsets.committable() == 8
    offsets.finished(8)
    offsets.finished(9)
    assert offsets.committable() == 10
    assert offsets.in_flight == 0


def test_out_of_order_completion_waits_for_the_lowest_unfinished_record():
    offsets = PartitionOffsets()
    for offset in (10, 11, 12):
        offsets.started(offset)
    offsets.finished(12)
    offsets.finished(11)
    assert offsets.committable() is None
    assert offsets.in_flight == 3
    offsets.finished(10)
    assert offsets.committable() == 13


def test_a_finish_for_an_unknown_offset_changes_nothing():
    offsets = PartitionOffsets()
    offsets.started(1)
    offsets.finished(99)
    assert offsets.committable() is None
