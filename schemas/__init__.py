"""Avro schemas (``*.avsc``) and the codec: packet bytes to alerts, annotated alerts to bytes.

Entry points: ``codec.decode_packet`` / ``codec.decode_alert`` (ZTF ``Alert``, Rubin
``rubin.RubinAlert``; both have ``view``, the survey-neutral ``survey.SurveyAlert``),
``registry.LocalSchemas`` / ``registry.RemoteRegistry`` (writer schemas of wire-format
messages), ``wire.frame`` / ``wire.encode_wire``, ``encode.OutputEncoder``,
``stamps.encode_stamp`` / ``stamps.decode_stamp``, ``packets.write_alert_packet``; every
failure is an ``errors.PacketError`` with a stable ``reason``.
"""
