"""A minimal inferwatch event consumer: persistent QoS 1 session, deduplication by event id.

    pip install paho-mqtt
    python consumer.py --host BROKER [--port 1883] [--topic 'inferwatch/v1/+/events/#']

A kind's dotted parts are topic levels (`gpu.xid` arrives on `.../events/gpu/xid`), so one
family is `--topic 'inferwatch/v1/+/events/gpu/#'`; the printed kind is the envelope's.

Prints one line per new event. Keeps the last 100,000 ids to drop at-least-once repeats.
"""

from __future__ import annotations

import argparse
import json
from collections import OrderedDict
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SEEN_MAX = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--topic", default="inferwatch/v1/+/events/#")
    parser.add_argument("--client-id", default="inferwatch-consumer")
    args = parser.parse_args()
    seen: OrderedDict[str, None] = OrderedDict()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        event = json.loads(message.payload)
        if event["id"] in seen:
            return  # a repeat after the agent reconnected
        seen[event["id"]] = None
        if len(seen) > SEEN_MAX:
            seen.popitem(last=False)
        print(f'{event["ts"]} {event["host"]} {event["severity"]:8} {event["kind"]}: '
              f'{json.dumps(event["data"])}')

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=args.client_id,
                         protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(args.topic, qos=1)
    session = Properties(PacketTypes.CONNECT)
    session.SessionExpiryInterval = 86_400  # without it, clean_start=False keeps nothing
    client.connect(args.host, args.port, clean_start=False, properties=session)
    client.loop_forever()


if __name__ == "__main__":
    main()
