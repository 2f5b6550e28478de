"""Idle cost: what the one-minute schedule (and the worker's SQS polling) costs per month with no work,
beside one always-on small VM (what a WebODM deployment needs even when nobody uses it).

One idle poll cycle (no active tasks) is run through aloft_local.scheduler.run_poller_once()
against a moto server in a child process, with zero nodes, one unreachable node (refused,
and hanging until the refresh timeout) and one idle online node; its DynamoDB calls are
counted and sized into request units, its wall time stands for the Lambda's billed duration.
"""
from __future__ import annotations

import json
import math
import socket
import statistics
import time

from benchmarks.common import ROOT, counting, moto_server_aloft

# ------------------------------------------------------------------------------------------
# AWS list prices, us-east-1, on-demand, in USD. Written down 2026-11-28 from the AWS pricing
# pages as last published (aws.amazon.com/lambda/pricing, /dynamodb/pricing/on-demand,
# /eventbridge/pricing, /cloudwatch/pricing, /secrets-manager/pricing, /ec2/pricing/on-demand,
# /ebs/pricing, /vpc/pricing for public IPv4); they have been stable since the DynamoDB
# on-demand cut of 2024-11-01 and the public IPv4 charge of 2024-02-01. Re-check before quoting.
PRICES_DATE = "2026-11-28"
LAMBDA_GB_SECOND = 0.0000166667          # x86_64 (the packaged functions' architecture)
LAMBDA_REQUEST = 0.20 / 1_000_000
LAMBDA_FREE_GB_SECONDS = 400_000         # always-free tier, per account per month
LAMBDA_FREE_REQUESTS = 1_000_000
EVENTBRIDGE_SCHEDULED_RULE = 0.0         # scheduled rules on the default bus: AWS events, free
DYNAMODB_WRITE_UNIT = 0.625 / 1_000_000  # on-demand write request unit (1 KB)
DYNAMODB_READ_UNIT = 0.125 / 1_000_000   # on-demand read request unit (4 KB strongly consistent)
LOGS_INGESTED_GB = 0.50                  # CloudWatch Logs standard ingestion
SECRET_MONTH = 0.40                      # Secrets Manager, per secret per month
SQS_REQUEST = 0.40 / 1_000_000           # standard queue, per request (each 64 KB of payload)
SQS_FREE_REQUESTS = 1_000_000            # always-free tier, per account per month
# The worker's SQS event source: with the queue empty, Lambda keeps 5 pollers long-polling
# (20 s waits), about 15 ReceiveMessage calls a minute, billed as SQS requests.
EVENT_SOURCE_IDLE_RECEIVES_PER_MINUTE = 5 * 3
EC2_HOURLY = {"t3.small": 0.0208, "t4g.small": 0.0168}  # Linux on-demand, 2 GB RAM
EBS_GP3_GB_MONTH = 0.08
VM_DISK_GB = 30                          # WebODM's images, database and media on one gp3 volume
PUBLIC_IPV4_HOURLY = 0.005               # the VM's public address (the Lambda API needs none)
HOURS_PER_MONTH = 730
CYCLES_PER_MONTH = 30 * 24 * 60          # rate(1 minute): 43,200
# A poller invocation writes START, END, REPORT and the "poll cycle: {...}" line.
LOG_BYTES_PER_CYCLE = 500

MEASURED_CYCLES = 5


# ------------------------------------------------------------------------------------------
# DynamoDB request units from the calls a cycle makes (DynamoDB's sizing rules, approximated)

def _value_bytes(value: dict) -> int:
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in inner.items())
    if kind in ("SS", "NS", "BS"):
        return sum(_value_bytes({kind[0]: v}) for v in inner)
    return 0


def item_bytes(item: dict) -> int:
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


class CapacityMeter:
    """Read and write request units per call: reads in 4 KB blocks (half a unit when eventually
    consistent), writes in 1 KB blocks, transactions doubled, at least one block per request."""

    def __init__(self) -> None:
        self.read_units = 0.0
        self.write_units = 0.0
        self.largest_write = 0
        self._params: dict = {}

    def before(self, params=None, model=None, **_):
        self._params = dict(params or {})

    def after(self, parsed=None, model=None, **_):
        operation, params, reply = model.name, self._params, parsed or {}
        if operation in ("GetItem", "Query", "Scan"):
            items = [reply["Item"]] if "Item" in reply else reply.get("Items", [])
            blocks = max(1, math.ceil(sum(item_bytes(i) for i in items) / 4096))
            consistent = params.get("ConsistentRead") and "IndexName" not in params
            self.read_units += blocks * (1.0 if consistent else 0.5)
        elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
            size = item_bytes(params.get("Item") or reply.get("Attributes") or {})
            self.largest_write = max(self.largest_write, size)
            self.write_units += max(1, math.ceil(size / 1024))
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems", []):
                (_, request), = entry.items()
                self.write_units += 2 * max(1, math.ceil(item_bytes(request.get("Item", {})) / 1024))


def _idle_cycle() -> tuple[dict, float, CapacityMeter, dict]:
    from aloft_local.scheduler import run_poller_once
    from chalicelib import aws

    meter = CapacityMeter()
    client = aws.dynamodb()
    client.meta.events.register("before-call.dynamodb.*", meter.before)
    client.meta.events.register("after-call.dynamodb.*", meter.after)
    try:
        with counting() as counter:
            started = time.perf_counter()
            stats = run_poller_once(timeout_seconds=120)
            elapsed = time.perf_counter() - started
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", meter.before)
        client.meta.events.unregister("after-call.dynamodb.*", meter.after)
    return dict(counter.calls), elapsed, meter, stats


def _measure(label: str, cycles: int = MEASURED_CYCLES) -> dict:
    _idle_cycle()  # warm: imports, clients, connection pools (a warm Lambda container)
    runs = [_idle_cycle() for _ in range(cycles)]
    calls, _, meter, stats = runs[-1]
    assert stats.get("active") == 0, stats
    seconds = statistics.median(r[1] for r in runs)
    dynamodb = {op.split(":", 1)[1]: n for op, n in calls.items() if op.startswith("dynamodb:")}
    other = {op: n for op, n in calls.items() if not op.startswith("dynamodb:")}
    print(f"{label}: {sum(dynamodb.values())} DynamoDB calls "
          f"({', '.join(f'{op}×{n}' for op, n in sorted(dynamodb.items())) or 'none'})"
          f"{'; other AWS calls ' + str(other) if other else ''}; "
          f"{meter.read_units:g} RRU + {meter.write_units:g} WRU"
          f"{f' (node item {meter.largest_write:,} bytes)' if meter.largest_write else ''}; "
          f"cycle {seconds * 1000:.0f} ms (median of {cycles})")
    return {"label": label, "calls": sum(dynamodb.values()), "seconds": seconds,
            "read_units": meter.read_units, "write_units": meter.write_units}


def _poller_memory_mb(stage: str = "prod") -> int:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stage_config = config["stages"][stage]
    poller = stage_config.get("lambda_functions", {}).get("poller", {})
    return int(poller.get("lambda_memory_size") or stage_config.get("lambda_memory_size")
               or config.get("lambda_memory_size") or 128)


def _hanging_listener() -> socket.socket:
    """A port that accepts connections (the kernel's backlog) and never answers, so each refresh
    waits for the whole timeout, as it does for a node whose address no longer answers at all
    (a terminated VM: the connect times out after the same timeout)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _monthly(scenario: dict, memory_mb: int) -> dict:
    gb_seconds = CYCLES_PER_MONTH * max(0.001, scenario["seconds"]) * memory_mb / 1024
    lambda_cost = gb_seconds * LAMBDA_GB_SECOND + CYCLES_PER_MONTH * LAMBDA_REQUEST
    lambda_free = (max(0.0, gb_seconds - LAMBDA_FREE_GB_SECONDS) * LAMBDA_GB_SECOND
                   + max(0, CYCLES_PER_MONTH - LAMBDA_FREE_REQUESTS) * LAMBDA_REQUEST)
    dynamodb = CYCLES_PER_MONTH * (scenario["read_units"] * DYNAMODB_READ_UNIT
                                   + scenario["write_units"] * DYNAMODB_WRITE_UNIT)
    logs = CYCLES_PER_MONTH * LOG_BYTES_PER_CYCLE / 1e9 * LOGS_INGESTED_GB
    return {"gb_seconds": gb_seconds, "lambda": lambda_cost, "lambda_free": lambda_free,
            "dynamodb": dynamodb, "logs": logs}


def _scenarios() -> list[dict]:
    from chalicelib.nodes import REFRESH_TIMEOUT
    from chalicelib.store import nodes as node_store
    from tests.fake_nodeodm import FakeNodeODM

    scenarios = [_measure("zero nodes")]
    refused = node_store.create({"hostname": "127.0.0.1", "port": _closed_port()})
    scenarios.append(_measure("1 unreachable node (connection refused)"))
    node_store.delete(refused["id"])
    with FakeNodeODM() as fake:
        online = node_store.create({"hostname": fake.hostname, "port": fake.port})
        scenarios.append(_measure("1 idle online node (fake NodeODM; refreshed every cycle)"))
        node_store.delete(online["id"])
    with _hanging_listener() as listener:
        hanging = node_store.create({"hostname": "127.0.0.1", "port": listener.getsockname()[1]})
        scenarios.append(_measure(f"1 unreachable node (no answer; refresh timeout {REFRESH_TIMEOUT:g} s)",
                                  cycles=1))
        node_store.delete(hanging["id"])
    return scenarios


def _idle_total(scenarios: list[dict], memory_mb: int) -> float:
    """The schedule's month with one idle online node (Lambda + DynamoDB, no free tier)."""
    scenario = next(s for s in scenarios if s["label"].startswith("1 idle online node"))
    cost = _monthly(scenario, memory_mb)
    return cost["lambda"] + cost["dynamodb"]


def main() -> None:
    memory_mb = _poller_memory_mb()
    print("== Idle cost: one poll cycle with no active task (moto server in a child process) ==")
    with moto_server_aloft():
        from app import app

        level = app.log.level
        app.log.setLevel("WARNING")  # not the "poll cycle: {...}" line of every cycle
        try:
            scenarios = _scenarios()
        finally:
            app.log.setLevel(level)

    print(f"\n== Monthly cost of the schedule with no work: us-east-1 list prices of {PRICES_DATE} ==")
    print(f"cycles per month: {CYCLES_PER_MONTH:,} (rate(1 minute), 30 days); poller memory "
          f"{memory_mb} MB (.chalice/config.json, stage prod); EventBridge scheduled rule "
          f"${EVENTBRIDGE_SCHEDULED_RULE:.2f}")
    print(f"Lambda ${LAMBDA_GB_SECOND:.10f}/GB-s + ${LAMBDA_REQUEST * 1e6:.2f}/M requests "
          f"(free tier {LAMBDA_FREE_GB_SECONDS:,} GB-s + {LAMBDA_FREE_REQUESTS:,} requests a month); "
          f"DynamoDB on-demand ${DYNAMODB_READ_UNIT * 1e6:.3f}/M RRU, ${DYNAMODB_WRITE_UNIT * 1e6:.3f}/M WRU; "
          f"CloudWatch Logs ${LOGS_INGESTED_GB:.2f}/GB ingested ({LOG_BYTES_PER_CYCLE} B per cycle)")
    header = (f"{'scenario':<58} {'GB-s/month':>10} {'Lambda':>8} {'(free tier)':>11} "
              f"{'DynamoDB':>9} {'total':>8} {'(free tier)':>11} {'CW Logs':>8}")
    print(header)
    for scenario in scenarios:
        cost = _monthly(scenario, memory_mb)
        total = cost["lambda"] + cost["dynamodb"]
        total_free = cost["lambda_free"] + cost["dynamodb"]
        print(f"{scenario['label']:<58} {cost['gb_seconds']:>10,.0f} ${cost['lambda']:>7.2f} "
              f"${cost['lambda_free']:>10.2f} ${cost['dynamodb']:>8.3f} ${total:>7.2f} "
              f"${total_free:>10.2f} ${cost['logs']:>7.3f}")
    print("total = Lambda + DynamoDB; (free tier) = with Lambda's always-free monthly allowance, "
          "which the account shares with the API function")
    receives = EVENT_SOURCE_IDLE_RECEIVES_PER_MINUTE * CYCLES_PER_MONTH
    polling = receives * SQS_REQUEST
    print(f"the worker's SQS event source polling the empty queue: {receives:,} ReceiveMessage a month "
          f"(5 long-polling pollers): ${polling:.2f} (${max(0, receives - SQS_FREE_REQUESTS) * SQS_REQUEST:.2f} "
          f"with SQS's 1M free requests); so the idle month with one idle online node is "
          f"${_idle_total(scenarios, memory_mb):.2f} without it and ${_idle_total(scenarios, memory_mb) + polling:.2f} "
          "with it (no free tiers)")
    print(f"fixed, whatever the schedule: the JWT secret ${SECRET_MONTH:.2f}/month (Secrets Manager); "
          "API Gateway, S3, SQS and DynamoDB storage of an empty deployment ~$0")

    print("\n== One always-on small VM (what a WebODM deployment needs even when idle) ==")
    disk = VM_DISK_GB * EBS_GP3_GB_MONTH
    ipv4 = PUBLIC_IPV4_HOURLY * HOURS_PER_MONTH
    for instance, hourly in EC2_HOURLY.items():
        compute = hourly * HOURS_PER_MONTH
        print(f"{instance} on-demand ${hourly}/h × {HOURS_PER_MONTH} h = ${compute:.2f} "
              f"+ {VM_DISK_GB} GB gp3 ${disk:.2f} + public IPv4 ${ipv4:.2f} = ${compute + disk + ipv4:.2f}/month")


if __name__ == "__main__":
    main()
