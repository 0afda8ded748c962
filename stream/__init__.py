"""The daemon: sources, micro-batcher, pipeline, sinks, dead letters, metrics, health, config.

Where to look:

- ``checkpoint.py``: the commit order, step by step (poll, decode, classify, produce, wait
  for acknowledgements, commit), and what happens on revocation and shutdown;
- ``config.py``: the one config object (YAML + ``STAMPFLOW_...`` environment);
- ``kafka_source.py`` / ``archive_source.py``: where packets come from; ``batcher.py``;
- ``pipeline.py``: decode and classify; ``sinks.py`` and ``dead_letters.py``: where they go;
- ``metrics.py`` and ``health.py``: ``/metrics``, ``/healthz``, ``/readyz`` on one port;
- ``daemon.py`` (one worker), ``workers.py`` (``--workers N``), and the ``*_cmd.py`` commands.
"""
