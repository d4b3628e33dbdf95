"""A Sparkplug B edge node written with a third-party library, pysparkplug (PyPI, pinned in
tests/sparkplug/requirements.txt), driven by the end-to-end test
tests/tests/e2e/sparkplug_interop.rs against dtwin's Sparkplug host.

One edge node with one device whose metrics are the milling profile's sensor keys, each with an
alias. What it does, printing one line per step on stdout for the test to follow:

  BIRTH bdseq=B             pysparkplug connected and published NBIRTH (seq 0) and DBIRTH (seq 1)
  DATA i seq=S              a DDATA whose metrics carry only an alias (reading i)
  GAP seq=S expected=E      one DDATA whose seq skips one (a lost message, as the host sees it)
  REBIRTH_REQUESTED         the host's NCMD `Node Control/Rebirth` = true arrived
  REBIRTHED bdseq=B         honoured: NBIRTH (seq 0, the same bdSeq) and DBIRTH (seq 1, the
                            device's current values: a new reading) on the same connection
  DATA i seq=S              more data by alias
  WAITING                   all sent; a line `die` on stdin ends it
  DEATH                     then the process exits without an MQTT DISCONNECT: the broker
                            publishes the node's will, the NDEATH whose bdSeq is the NBIRTH's

What is pysparkplug's own: the MQTT connection (paho), the NBIRTH/DBIRTH on connect with the
bdSeq metric and the seq reset to 0, the NDEATH will, the NCMD subscription and its callback,
the payload classes and their protobuf encoding. What is the script's, built from those public
classes and sent through the node's pysparkplug `Client`:
- the DDATA by alias: `EdgeNode.update_device` sends every data metric with its name (and the
  alias when given), so they are `DData` payloads of `Metric(alias=...)` only, numbered on
  from the library's births (NBIRTH 0, DBIRTH 1);
- the rebirth: pysparkplug has no rebirth call (it births only from its on-connect callback),
  so the callback's request is answered with `NBirth` and `DBirth` payloads of the node's and
  the device's metrics. Reconnecting instead (`Client.disconnect`, `EdgeNode.connect`) was
  tried: on the embedded broker under load, the takeover of the client id published the new
  connection's will at once (a stale NDEATH);
- the death: `EdgeNode.disconnect` in 0.6.1 sends an NDEATH with the bdSeq prepared for the
  next connection, not the NBIRTH's, which a host must ignore as stale; so the node dies as
  a crashed one does, and the broker sends its will.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time

import pysparkplug as spb

# The milling profile's sensor keys (services/lib/profile/profiles/milling.toml) and aliases.
SENSORS = [
    ("temperature_c", 1),
    ("ambient_temperature_c", 2),
    ("vibration_mm_s", 3),
    ("pressure_bar", 4),
    ("spindle_rpm", 5),
    ("torque_nm", 6),
    ("tool_wear_min", 7),
]
REBIRTH = "Node Control/Rebirth"
WAIT_S = 30.0


def say(line: str) -> None:
    print(line, flush=True)


def fail(why: str) -> None:
    say(f"ERROR {why}")
    sys.stdout.flush()
    os._exit(2)


def reading(args: argparse.Namespace, i: int) -> dict[str, float]:
    """Reading i: a healthy temperature and pressure, severe vibration, a worn tool."""
    wiggle = (i % 3) * 0.1
    return {
        "temperature_c": 36.0 + wiggle,
        "ambient_temperature_c": 25.0,
        "vibration_mm_s": args.vibration + wiggle,
        "pressure_bar": 6.0 + wiggle,
        "spindle_rpm": 1500.0 + 10 * (i % 3),
        "torque_nm": 40.0 + wiggle,
        "tool_wear_min": args.tool_wear + i,
    }


def named(values: dict[str, float], ts: int) -> list[spb.Metric]:
    return [
        spb.Metric(
            timestamp=ts,
            name=name,
            alias=alias,
            datatype=spb.DataType.DOUBLE,
            value=values[name],
        )
        for name, alias in SENSORS
    ]


def by_alias(values: dict[str, float], ts: int) -> tuple[spb.Metric, ...]:
    return tuple(
        spb.Metric(
            timestamp=ts,
            name=None,
            alias=alias,
            datatype=spb.DataType.DOUBLE,
            value=values[name],
        )
        for name, alias in SENSORS
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--before", type=int, default=12, help="DDATA before the gap")
    p.add_argument("--after", type=int, default=3, help="DDATA after the rebirth")
    p.add_argument("--vibration", type=float, default=15.0)
    p.add_argument("--tool-wear", type=float, default=240.0)
    p.add_argument("--step-ms", type=int, default=1000, help="reading timestamps' spacing")
    args = p.parse_args()

    events: queue.Queue[str] = queue.Queue()
    t0 = int(time.time() * 1000)
    clock = iter(range(1_000_000))

    def next_ts() -> tuple[int, int]:
        i = next(clock)
        return i, t0 + i * args.step_ms

    def on_ncmd(_node: spb.EdgeNode, message: spb.Message) -> None:
        for m in message.payload.metrics:
            if m.name == REBIRTH and m.value is True:
                events.put("rebirth")

    client = spb.Client(client_id=f"pysparkplug-{args.group}-{args.node}")
    node = spb.EdgeNode(
        group_id=args.group,
        edge_node_id=args.node,
        metrics=[
            spb.Metric(
                timestamp=t0, name=REBIRTH, datatype=spb.DataType.BOOLEAN, value=False
            )
        ],
        client=client,
        cmd_callback=on_ncmd,
    )
    i, ts = next_ts()
    device = spb.Device(device_id=args.device, metrics=named(reading(args, i), ts))
    node.register(device)

    # The node's own DBIRTH coming back tells that the births are out (pysparkplug publishes
    # them from its on-connect callback, after re-subscribing).
    own_dbirth = spb.Topic(
        message_type=spb.MessageType.DBIRTH,
        group_id=args.group,
        edge_node_id=args.node,
        device_id=args.device,
    )
    node.subscribe(own_dbirth, spb.QoS.AT_LEAST_ONCE, lambda _n, _m: events.put("born"))
    own_nbirth = spb.Topic(
        message_type=spb.MessageType.NBIRTH, group_id=args.group, edge_node_id=args.node
    )
    bd_seq = []

    def on_nbirth(_node: spb.EdgeNode, message: spb.Message) -> None:
        bd_seq.extend(m.value for m in message.payload.metrics if m.name == "bdSeq")

    node.subscribe(own_nbirth, spb.QoS.AT_LEAST_ONCE, on_nbirth)
    data_topic = spb.Topic(
        message_type=spb.MessageType.DDATA,
        group_id=args.group,
        edge_node_id=args.node,
        device_id=args.device,
    )

    def wait(event: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                got = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                fail(f"no {event} within {WAIT_S} s")
            if got == event:
                return
            # A repeated rebirth request (the host asks again while it waits) is not an error.
            if got != "rebirth":
                fail(f"{got} while waiting for {event}")

    def born(line: str) -> None:
        node.connect(args.host, port=args.port, blocking=False)
        wait("born")
        say(f"{line} bdseq={bd_seq[-1] if bd_seq else '?'}")

    def send(topic: spb.Topic, payload, include_dtypes: bool = False) -> None:
        """QoS 0 and not retained, as pysparkplug sends its own births and data."""
        message = spb.Message(topic=topic, payload=payload, qos=spb.QoS.AT_MOST_ONCE, retain=False)
        client.publish(message, include_dtypes=include_dtypes)

    def rebirth(ts: int) -> None:
        """The births again on the live connection: seq 0 and 1, the session's bdSeq."""
        bd = spb.Metric(timestamp=ts, name="bdSeq", datatype=spb.DataType.INT64, value=bd_seq[-1])
        births = [
            (own_nbirth, spb.NBirth(timestamp=ts, seq=0, metrics=(*node.metrics.values(), bd))),
            (own_dbirth, spb.DBirth(timestamp=ts, seq=1, metrics=tuple(device.metrics.values()))),
        ]
        for topic, payload in births:
            send(topic, payload, include_dtypes=True)
        wait("born")
        say(f"REBIRTHED bdseq={bd_seq[-1]}")

    def ddata(seq: int) -> None:
        i, ts = next_ts()
        values = reading(args, i)
        payload = spb.DData(timestamp=ts, seq=seq, metrics=by_alias(values, ts))
        send(data_topic, payload)
        # The device's current values, as its next DBIRTH must carry them.
        device.update(named(values, ts))
        say(f"DATA {i} seq={seq}")

    born("BIRTH")
    seq = 2  # NBIRTH took 0 and DBIRTH 1
    for _ in range(args.before):
        ddata(seq)
        seq = (seq + 1) % 256

    skipped = (seq + 1) % 256
    i, ts = next_ts()
    gap = spb.DData(timestamp=ts, seq=skipped, metrics=by_alias(reading(args, i), ts))
    send(data_topic, gap)
    say(f"GAP seq={skipped} expected={seq}")

    wait("rebirth")
    say("REBIRTH_REQUESTED")
    # The DBIRTH carries the device's current values: make them a new reading.
    i, ts = next_ts()
    device.update(named(reading(args, i), ts))
    rebirth(ts)
    seq = 2
    for _ in range(args.after):
        ddata(seq)
        seq = (seq + 1) % 256

    say("WAITING")
    for line in sys.stdin:
        if line.strip() == "die":
            break
    say("DEATH")
    # No DISCONNECT: the socket closes with the process and the broker sends the will.
    os._exit(0)


if __name__ == "__main__":
    main()
