"""Kafka client construction and small helpers: the only module that imports confluent_kafka.

``import confluent_kafka`` (never ``from confluent_kafka import X``): Ray pickles actor classes
by value, and a module-level name bound to a confluent_kafka C type breaks that pickling.
Every client config starts from ``KafkaSettings.client_config()`` so credentials pass through
unchanged; configs are never logged because they may hold secrets.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import confluent_kafka
import confluent_kafka.admin

from models.settings import KafkaSettings
from reducer.nodes.resume import BrokerView

KafkaException = confluent_kafka.KafkaException
"""What a client call raises when Kafka refuses (re-exported: only this module imports
confluent_kafka)."""
log = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes | str | None]] | dict[str, bytes | str | None]

# Tansu answers a group join only after ~session.timeout.ms/2; Kafka's 45 s default would make
# every join cost ~23 s. 6 s keeps joins and dead-member detection quick on any broker (Kafka
# refuses less by default: group.min.session.timeout.ms). On the embedded Tansu broker, which
# has no such floor, 3 s: a join answered in 2.1 s instead of 3.0 s (KafkaSettings).
SESSION_TIMEOUT_MS = 6000
EMBEDDED_SESSION_TIMEOUT_MS = 3000
HEARTBEAT_INTERVAL_MS = 1000
# Measured against Tansu 0.6: range and cooperative-sticky both rebalance correctly, but every
# join round costs ~session.timeout/2 there, and cooperative-sticky needs three rounds to add a
# member (~11 s) where range needs one (~5 s). Eager range it is; on a real cluster set
# extra_config {"partition.assignment.strategy": "cooperative-sticky"} (settings beat defaults).
ASSIGNMENT_STRATEGY = "range"
# librdkafka prefetches up to 64 MiB per consumer by default, and when that queue is full waits
# fetch.queue.backoff.ms (1 s) before fetching again. 8 MiB (a third of a second of one ingest
# actor's share at 120k events/s) with a 10 ms backoff: benchmarks/e2e.py at 1M events, each
# ingest actor's peak RSS 373 -> 277 MiB at the same rate, and a plain consumer reads 252k
# instead of 121k events/s (the 1 s backoff idled it half the time). 16 MiB with the 1 s
# backoff halved the pipeline's rate.
PREFETCH_KBYTES = 8192
PREFETCH_BACKOFF_MS = 10
# With enable.partition.eof, a consumer yields this "error" each time it reaches a partition's end.
PARTITION_EOF = confluent_kafka.KafkaError._PARTITION_EOF


class KafkaDeliveryError(RuntimeError):
    """One or more produced messages were not acknowledged by the broker."""


def _config(
    settings: KafkaSettings,
    defaults: dict[str, Any],
    required: dict[str, Any],
    overrides: dict[str, Any],
) -> dict[str, Any]:
    """Tunable defaults < settings (incl. extra_config) < what correctness needs < overrides.

    Overrides use verbatim librdkafka names, e.g. ``**{"fetch.min.bytes": 1}``; python-only keys
    such as ``error_cb`` work too.
    """
    conf: dict[str, Any] = dict(defaults)
    conf.update(settings.client_config())
    conf.update(required)
    conf.update(overrides)
    return conf


def make_consumer(
    settings: KafkaSettings, group_id: str | None = None, **overrides: Any
) -> confluent_kafka.Consumer:
    """A consumer with manual commits: offsets advance only after output is safely published."""
    return confluent_kafka.Consumer(consumer_config(settings, group_id, **overrides))


def consumer_config(
    settings: KafkaSettings, group_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """``make_consumer``'s librdkafka configuration."""
    session_ms = settings.session_timeout_ms or SESSION_TIMEOUT_MS
    defaults = {
        "auto.offset.reset": settings.auto_offset_reset,
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": min(HEARTBEAT_INTERVAL_MS, session_ms // 3),
        "partition.assignment.strategy": ASSIGNMENT_STRATEGY,
        "queued.max.messages.kbytes": PREFETCH_KBYTES,
        "fetch.queue.backoff.ms": PREFETCH_BACKOFF_MS,
    }
    required = {"group.id": group_id or settings.group_id, "enable.auto.commit": False}
    return _config(settings, defaults, required, overrides)


def leave_and_close(consumer: confluent_kafka.Consumer, timeout: float = 5.0) -> None:
    """Leave the consumer group, then close.

    ``close()`` alone can block for good when a rebalance reaches it unserved: librdkafka calls
    the rebalance callback from inside close, and its ``rd_kafka_assign`` then waits on a closing
    group (confluentinc/librdkafka#4884; seen here with a consumer whose group was deleted while
    it was not polling). Unsubscribing and polling until the assignment is revoked leaves close
    nothing to serve. Messages polled meanwhile are dropped uncommitted: the group's next owner
    reads them from the committed offsets."""
    deadline = time.monotonic() + timeout
    try:
        consumer.unsubscribe()
        while consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.1)
    except confluent_kafka.KafkaException as exc:  # closing anyway
        log.warning("leaving the consumer group failed: %s", exc)
    consumer.close()


def group_state(report: str | dict[str, Any]) -> dict[str, Any]:
    """The consumer-group part of a librdkafka statistics report (``stats_cb``)."""
    parsed = json.loads(report) if isinstance(report, str) else report
    group = parsed.get("cgrp") or {}
    keys = ("state", "join_state", "rebalance_cnt", "rebalance_reason", "assignment_size")
    return {key: group.get(key) for key in keys}


def consumer_lags(report: dict[str, Any]) -> dict[str, int]:
    """Messages behind the partition's end, as ``topic[partition]``, for the partitions this
    consumer fetches (librdkafka reports -1 while it does not know; those are left out)."""
    lags = {}
    for topic, data in (report.get("topics") or {}).items():
        for partition, p in (data.get("partitions") or {}).items():
            lag = p.get("consumer_lag", -1)
            if partition != "-1" and p.get("fetch_state") == "active" and lag >= 0:
                lags[f"{topic}[{partition}]"] = lag
    return lags


def still_at_end(
    consumer: confluent_kafka.Consumer, ends: dict[tuple[str, int], int]
) -> list[tuple[str, int]]:
    """Of the partitions whose end the consumer reached at ``ends`` (partition-EOF offsets), those
    the fetcher has seen nothing past since. A partition-EOF is true only at that moment: once
    new messages are fetched they can wait in the local queue behind other partitions' (whose
    later event times then advance the watermark) while the partition still looks drained. The
    high offset cached from the latest fetch response (no broker round trip) reveals them."""
    at_end = []
    for (topic, partition), end in sorted(ends.items()):
        _low, high = consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition(topic, partition), cached=True
        )
        if high <= end:  # also librdkafka's "not known" (negative): the EOF is all we know
            at_end.append((topic, partition))
    return at_end


def produce_waiting(
    producer: confluent_kafka.Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
) -> None:
    """Produce one message, waiting for room in the producer's queue (``BufferError``) rather
    than dropping it; delivery is confirmed at the next flush."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers)
            break
        except BufferError:
            producer.poll(0.1)
    producer.poll(0)


def make_producer(
    settings: KafkaSettings, idempotent: bool = True, **overrides: Any
) -> confluent_kafka.Producer:
    """An acks=all producer; idempotence stops retries from duplicating messages."""
    defaults = {"linger.ms": 5, "compression.type": "lz4"}
    required: dict[str, Any] = {"acks": "all", "enable.idempotence": idempotent}
    return confluent_kafka.Producer(_config(settings, defaults, required, overrides))


def make_admin(settings: KafkaSettings, **overrides: Any) -> confluent_kafka.admin.AdminClient:
    return confluent_kafka.admin.AdminClient(_config(settings, {}, {}, overrides))


def list_topics(settings: KafkaSettings, timeout: float = 10.0) -> set[str]:
    metadata = make_admin(settings).list_topics(timeout=timeout)
    return set(metadata.topics)


def topic_partitions(
    client: confluent_kafka.Consumer, topics: Iterable[str], timeout: float = 10.0
) -> list[tuple[str, int]]:
    """Every (topic, partition) of ``topics`` that exists, from the cluster's metadata."""
    metadata = client.list_topics(timeout=timeout).topics
    return sorted(
        (topic, partition)
        for topic in topics
        if topic in metadata
        for partition in metadata[topic].partitions
    )


"""Partitions of each topic the pipeline creates."""


def topic_configs(settings: KafkaSettings) -> dict[str, dict[str, str]]:
    """Every topic the pipeline uses, with the configs it creates them with: the target topic
    is compacted, since consumers upsert by its key (the window id) and only the latest
    revision of a window matters; the others keep the broker's defaults."""
    plain = [*settings.input_topics, settings.intent_topic, settings.dead_letter_topic]
    configs: dict[str, dict[str, str]] = {key: {} for key in [*plain, settings.late_topic]}
    return {**configs, settings.target_topic: {"cleanup.policy": "compact"}}


def ensure_topics(
    settings: KafkaSettings,
    topics: Iterable[str] | Mapping[str, Mapping[str, str]],
    partitions: int | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Create the topics that do not exist yet (with their configs, when ``topics`` maps them
    to configs), with ``partitions`` partitions (``settings.topic_partitions`` by default);
    returns the ones created. Safe to repeat; existing topics are left as they are."""
    configs = dict(topics) if isinstance(topics, Mapping) else {key: {} for key in topics}
    partitions = partitions or settings.topic_partitions
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = sorted(set(configs) - existing)
    if not missing:
        return []
    futures = admin.create_topics(
        [
            confluent_kafka.admin.NewTopic(
                t, num_partitions=partitions, config=dict(configs[t] or {})
            )
            for t in missing
        ],
        request_timeout=timeout,
        operation_timeout=timeout,
    )
    created: list[str] = []
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(topic)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    if created:
        log.info("created topics %s (%d partitions)", created, partitions)
    return created


def delete_topics(settings: KafkaSettings, topics: Iterable[str], timeout: float = 10.0) -> None:
    """Delete topics; missing ones are ignored."""
    wanted = list(topics)
    if not wanted:
        return
    admin = make_admin(settings)  # keep a reference: a collected client cancels its futures
    futures = admin.delete_topics(wanted, operation_timeout=timeout)
    for future in futures.values():
        try:
            future.result(timeout=timeout)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def reset_group(
    settings: KafkaSettings, offsets: dict[tuple[str, int], int], timeout: float = 10.0
) -> str | None:
    """Delete the ingest consumer group (members and committed offsets) on the broker, then
    commit ``offsets`` to the new, empty group; returns why the broker refused to delete it
    (Kafka does while the group has members), or None."""
    admin = make_admin(settings)
    future = admin.delete_consumer_groups([settings.group_id], request_timeout=timeout)
    try:
        future[settings.group_id].result(timeout=timeout)
    except confluent_kafka.KafkaException as exc:
        return str(exc.args[0])
    if offsets:  # a consumer that never subscribes commits as the group, no membership needed
        consumer = make_consumer(settings)
        try:
            commit_offsets(consumer, offsets)
        finally:
            consumer.close()
    return None


def produce_batch(
    producer: confluent_kafka.Producer,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    headers: Headers | None = None,
    timeout: float = 30.0,
) -> int:
    """Produce (key, value) pairs, flush, and raise if any was not delivered. Returns the count.

    The same headers go on every message. Flushing per batch is what makes "published" mean
    acknowledged, which the caller relies on before committing input offsets.
    """
    errors: list[str] = []

    def on_delivery(err: confluent_kafka.KafkaError | None, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    hdrs = list(headers.items()) if isinstance(headers, dict) else headers
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=hdrs, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: serve callbacks until there is room
    remaining = producer.flush(timeout)
    if remaining:
        raise KafkaDeliveryError(f"{remaining} message(s) to {topic} still unsent after {timeout}s")
    if errors:
        raise KafkaDeliveryError(
            f"{len(errors)} of {len(messages)} message(s) to {topic} failed; first: {errors[0]}"
        )
    return len(messages)


def produce_each(
    producer: confluent_kafka.Producer,
    records: Sequence[tuple[str, bytes | None, bytes | None, Headers | None]],
    timeout: float = 30.0,
) -> list[str | None]:
    """Produce (topic, key, value, headers) records with one flush; per record, None when it
    was acknowledged or the reason it was not (one round trip for a tick's worth of intents,
    instead of one per record)."""
    outcome: list[str | None] = ["not acknowledged within the flush timeout"] * len(records)

    def settle(index: int) -> Callable[[confluent_kafka.KafkaError | None, Any], None]:
        def on_delivery(err: confluent_kafka.KafkaError | None, _msg: Any) -> None:
            outcome[index] = None if err is None else str(err)

        return on_delivery

    for index, (topic, key, value, headers) in enumerate(records):
        hdrs = list(headers.items()) if isinstance(headers, dict) else headers
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=hdrs, on_delivery=settle(index)
                )
                break
            except BufferError:
                producer.poll(0.1)
            except Exception as exc:  # refused before queueing (e.g. an invalid topic name)
                outcome[index] = f"{type(exc).__name__}: {exc}"
                break
    producer.flush(timeout)
    return outcome


def _partitions(
    consumer: confluent_kafka.Consumer, topic: str, deadline: float
) -> list[confluent_kafka.TopicPartition]:
    """The topic's partitions, waiting (until deadline) for the topic to exist."""
    while True:
        meta = consumer.list_topics(topic, timeout=max(0.1, min(2.0, deadline - time.monotonic())))
        info = meta.topics.get(topic)
        if info is not None and info.error is None and info.partitions:
            return [
                confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
                for p in sorted(info.partitions)
            ]
        if time.monotonic() >= deadline:
            return []
        time.sleep(0.1)


def consume_all(
    settings: KafkaSettings,
    topic: str,
    expected: int | None,
    timeout: float,
    group_id: str | None = None,
) -> list[confluent_kafka.Message]:
    """Read ``topic`` from the earliest offset until ``expected`` messages or ``timeout``.

    For tests and the CLI. With ``expected=None`` it reads until the timeout. Partitions are
    assigned directly rather than subscribed: no group join (which costs ~3 s on Tansu), no
    rebalance, and nothing is committed, so ``group_id`` only labels the client.
    """
    deadline = time.monotonic() + timeout
    group = group_id or f"{settings.group_id}.reader.{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(settings, group_id=group)
    out: list[confluent_kafka.Message] = []
    try:
        partitions = _partitions(consumer, topic, deadline)
        if not partitions:
            return out
        consumer.assign(partitions)
        while expected is None or len(out) < expected:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            want = 1000 if expected is None else min(1000, expected - len(out))
            for msg in consumer.consume(num_messages=want, timeout=min(left, 0.5)):
                err = msg.error()
                if err is None:
                    out.append(msg)
                elif err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    raise confluent_kafka.KafkaException(err)
    finally:
        consumer.close()
    return out


def read_to_end(
    settings: KafkaSettings,
    topic: str,
    on_message: Callable[[confluent_kafka.Message], None],
    timeout: float,
) -> bool:
    """Feed every message of ``topic``, from the earliest offset, to ``on_message`` until each
    partition reaches its end (partition EOF). Nothing is kept here, so memory does not grow
    with the topic. False when ``timeout`` ran out first; a missing topic is read at once."""
    deadline = time.monotonic() + timeout
    group = f"{settings.group_id}.reader.{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(settings, group_id=group, **{"enable.partition.eof": True})
    try:
        partitions = _partitions(consumer, topic, min(deadline, time.monotonic() + 2.0))
        consumer.assign(partitions)
        pending = {p.partition for p in partitions}
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                err = msg.error()
                if err is None:
                    on_message(msg)
                elif err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                else:
                    raise confluent_kafka.KafkaException(err)
        return not pending
    finally:
        consumer.close()


def broker_view(
    settings: KafkaSettings, ends_of: Iterable[tuple[str, int]] = (), timeout: float = 15.0
) -> BrokerView:
    """The cluster id, the input topics' partition counts, the group's committed offsets on
    them, and the end offsets of ``ends_of`` (what a resume is checked against)."""
    consumer = make_consumer(settings, **{"enable.partition.eof": True})
    try:
        metadata = consumer.list_topics(timeout=timeout)
        partitions = {
            topic: len(metadata.topics[topic].partitions)
            for topic in settings.input_topics
            if topic in metadata.topics and metadata.topics[topic].error is None
        }
        every = [
            confluent_kafka.TopicPartition(topic, p)
            for topic, count in partitions.items()
            for p in range(count)
        ]
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in (consumer.committed(every, timeout=timeout) if every else [])
            if tp.offset >= 0
        }
        wanted = [(t, p) for t, p in ends_of if p < partitions.get(t, 0)]
        ends = _partition_ends(consumer, wanted, timeout)
    finally:
        consumer.close()
    cluster = getattr(metadata, "cluster_id", None)
    return BrokerView(cluster or None, partitions, committed, ends)


def _partition_ends(
    consumer: confluent_kafka.Consumer, partitions: list[tuple[str, int]], timeout: float
) -> dict[tuple[str, int], int]:
    """End offsets as the broker reports them in fetch responses. ListOffsets would be one
    round trip, but some brokers answer it wrongly (Tansu 0.6 reports 1 for a partition of
    thousands), while every fetch response carries the true high watermark: fetch once from
    the start of each partition and read librdkafka's cached watermark."""
    if not partitions:
        return {}
    consumer.assign(
        [
            confluent_kafka.TopicPartition(t, p, confluent_kafka.OFFSET_BEGINNING)
            for t, p in partitions
        ]
    )
    pending = set(partitions)
    ends: dict[tuple[str, int], int] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.2):
            key = (message.topic(), message.partition())
            error = message.error()
            if error is not None and error.code() == PARTITION_EOF:
                ends[key] = max(ends.get(key, 0), message.offset())
            elif error is not None:
                continue
            pending.discard(key)
    for topic, partition in partitions:
        _low, high = consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition(topic, partition), cached=True
        )
        if high >= 0:
            ends[(topic, partition)] = max(ends.get((topic, partition), 0), high)
    consumer.unassign()
    return ends


def reset_to_earliest(settings: KafkaSettings, timeout: float = 10.0) -> str | None:
    """Start the group over: delete it, so a new member reads from the earliest retained
    offsets (``auto.offset.reset`` aside, the earliest ones are committed); returns the
    broker's reason when it refused to delete the group."""
    refused = reset_group(settings, {}, timeout)
    if refused is not None:
        return refused
    consumer = make_consumer(settings)
    try:
        metadata = consumer.list_topics(timeout=timeout)
        earliest = {}
        for topic in settings.input_topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                continue
            for p in info.partitions:
                low, _high = consumer.get_watermark_offsets(
                    confluent_kafka.TopicPartition(topic, p), timeout=timeout
                )
                earliest[(topic, p)] = max(low, 0)
        if earliest:
            commit_offsets(consumer, earliest)
    finally:
        consumer.close()
    return None


def commit_offsets(
    consumer: confluent_kafka.Consumer,
    offsets: dict[tuple[str, int], int],
    asynchronous: bool = False,
) -> None:
    """Commit ``{(topic, partition): next offset to read}``."""
    partitions = [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
    consumer.commit(offsets=partitions, asynchronous=asynchronous)
