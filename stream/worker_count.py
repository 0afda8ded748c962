"""``workers: auto`` (the default): as many workers as cores, never more than partitions.

A consumer group never has more busy members than its topics have partitions, and a worker
per core keeps every core busy without two workers fighting over one. The partition count
is known only from the cluster's metadata, and ``run_workers`` spawns the workers before any
of them fetches it, so ``resolve_workers`` asks first, in the parent, with the workers' own
start-up check (``cluster_check``: the same messages for an unreachable cluster, a failed
login or a missing topic), then hands on a config with the number filled in. Archive mode
has one worker. An explicit ``workers: N`` (``--workers N``) is kept as it is.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from stampflow.stream.cluster_check import check_cluster
from stampflow.stream.config import DaemonConfig
from stampflow.stream.kafka_producer import producer_properties
from stampflow.stream.threads import available_cores

log = logging.getLogger(__name__)

PartitionCounter = Callable[[DaemonConfig], int]


def default_workers(cores: int, partitions: int) -> int:
    """One worker per core, at most one per partition, at least one."""
    return max(1, min(cores, partitions))


def input_partitions(config: DaemonConfig) -> int:
    """The partitions of all of ``config``'s input topics, after the start-up check of every
    topic the daemon uses (``ClusterUnusable`` or ``ConfigError`` when it fails)."""
    keys = {
        "input.topics": config.input.topics,
        "output.topic": [config.output.topic],
        "dead_letter.topic": [config.dead_letter.topic],
    }
    metadata = check_cluster(producer_properties(config, None), keys)
    return sum(len(metadata.topics[name].partitions) for name in config.input.topics)


def resolve_workers(
    config: DaemonConfig,
    *,
    cores: int | None = None,
    partitions: PartitionCounter = input_partitions,
) -> DaemonConfig:
    """``config`` with ``workers`` set: as given, or (auto) ``default_workers`` of the cores
    this process may run on and the input's partitions (Kafka), or 1 (archive)."""
    if config.workers is not None:
        return config
    if not config.kafka_mode:
        return dataclasses.replace(config, workers=1)
    cores = available_cores() if cores is None else cores
    found = partitions(config)
    workers = default_workers(cores, found)
    log.info("workers: auto: %d (%d cores, %d input partitions)", workers, cores, found)
    return dataclasses.replace(config, workers=workers)
