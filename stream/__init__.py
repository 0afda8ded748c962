"""The daemon: sources, micro-batcher, pipeline, sinks, dead letters, metrics, health, config.

Where to look:

- ``checkpoint.py``: the commit order, step by step (poll, decode, classify, encode, send,
  wait once for acknowledgements, commit), what happens on revocation and shutdown, and the
  ``Checkpoint`` that ends each batch; ``loop.py``: the loop that polls and processes;
- ``config.py``: the one config object (YAML + ``STAMPFLOW_...`` environment);
- ``kafka_source.py`` / ``archive_source.py``: where packets come from; ``batcher.py``;
- ``pipeline.py``: decode and classify; ``encode_stage.py``: output bytes; ``sinks.py`` and
  ``dead_letters.py``: where they go (``topic_limits.py``: how large they may be);
- ``batch_result.py``: what a batch came to, the one input of metrics and run totals;
- ``metrics.py`` and ``health.py``: ``/metrics``, ``/healthz``, ``/readyz`` on one port;
- ``daemon.py`` (one worker), ``workers.py`` (``--workers N``), and the ``*_cmd.py`` commands.
"""
