"""The decision cores of the pipeline's actors, one per actor, without Ray or Kafka.

Each actor in actors/ is a thin shell that moves data (Ray calls, Kafka I/O, timers) and calls
its core here; time is passed in, so every rule is unit-tested without sleeping:

- ``ingest.IngestDispatcher``: routing, size checks, offset ranges, batch assembly, settling;
- ``window.WindowNode``: decode, dedup, hourly panes, watermark, deltas, snapshot codec;
- ``coordinator.TickPlanner``: gather, plan, build intents, finality, checkpoint contents;
- ``history.HistoryView``: the closed windows served by /history;
- ``supervisor``: what to rebuild, and when.

``messages`` holds what travels between them, ``stats`` what each reports.
"""
