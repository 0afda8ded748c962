"""Avro schemas (``*.avsc``) and the codec: packet bytes to ``Alert``, annotated alerts to bytes.

Entry points: ``codec.decode_packet`` / ``codec.decode_alert``, ``encode.OutputEncoder``,
``stamps.encode_stamp`` / ``stamps.decode_stamp``, ``packets.write_alert_packet``; every
failure is an ``errors.PacketError`` with a stable ``reason``.
"""
