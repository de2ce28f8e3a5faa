"""The raw SQL baseline: a copy as lean as it gets, in psycopg on the same schema.

One transaction per copy and five statements: claim, read (the source order
with its lines and their SKUs' prices), insert the order, insert every line
in one statement, finish. No ORM, no history, no stock, no payment: it is the
floor under what the engine does, not a second implementation of it.

Imports only psycopg, so that ``spawn``ed loop processes start light.
"""

from __future__ import annotations

import os
import secrets
import string
import time
from multiprocessing.synchronize import Barrier
from typing import Any

import psycopg

ALPHABET = string.ascii_letters + string.digits

CLAIM = """
UPDATE order_copies
   SET status = 'in_progress', attempt = attempt + 1, claims = claims + 1,
       started_at = coalesce(started_at, now()),
       lease_expires_at = now() + interval '30 seconds', updated_at = now()
 WHERE id = %s AND status = 'pending'
RETURNING source_order_id, attempt"""

READ = """
SELECT o.mode, o.customer_id, o.customer_email, o.currency_code, o.billing_address_id,
       o.shipping_address_id, o.customer_payment_source_id, o.payment_method,
       o.payment_gateway, o.payment_source_token,
       li.item_type, li.sku_code, coalesce(s.name, li.name), li.quantity,
       coalesce(s.unit_amount_cents, li.unit_amount_cents), li.options::text, li.metadata::text
  FROM orders o
  JOIN line_items li ON li.order_id = o.id
  LEFT JOIN skus s ON s.mode = o.mode AND s.code = li.sku_code
 WHERE o.id = %s
 ORDER BY li.position"""

INSERT_ORDER = """
INSERT INTO orders (id, number, status, payment_status, fulfillment_status, customer_id,
       customer_email, currency_code, billing_address_id, shipping_address_id,
       customer_payment_source_id, payment_method, payment_gateway, payment_source_token,
       subtotal_amount_cents, shipping_amount_cents, adjustment_amount_cents,
       total_amount_cents, metadata, mode, created_at, updated_at)
VALUES (%s, nextval('orders_number_seq'), 'pending', 'unpaid', 'unfulfilled', %s, %s, %s, %s,
        %s, %s, %s, %s, %s, %s, 0, 0, %s, '{}', %s, now(), now())"""

INSERT_LINES = """
INSERT INTO line_items (id, order_id, position, item_type, sku_code, name, quantity,
       unit_amount_cents, total_amount_cents, options, metadata, mode, created_at, updated_at)
SELECT i, %s, p, t, c, n, q, u, u * q, o::jsonb, m::jsonb, %s, now(), now()
  FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::int[], %s::int[],
              %s::text[], %s::text[]) AS line(i, p, t, c, n, q, u, o, m)"""

FINISH = """
UPDATE order_copies
   SET status = 'completed', completed_at = now(), lease_expires_at = NULL,
       step = 'target_built', target_order_id = %s, updated_at = now()
 WHERE id = %s AND attempt = %s"""


def new_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(10))


def copy_one(conn: psycopg.Connection[Any], copy_id: str) -> bool:
    """Copy ``copy_id``'s source order in one transaction; False if it was not pending."""
    with conn.transaction():
        claimed = conn.execute(CLAIM, (copy_id,)).fetchone()
        if claimed is None:
            return False
        source_id, attempt = claimed
        rows = conn.execute(READ, (source_id,)).fetchall()
        mode = rows[0][0]
        target_id = new_id()
        total = sum(row[13] * row[14] for row in rows)
        conn.execute(INSERT_ORDER, (target_id, *rows[0][1:10], total, total, mode))
        columns = list(zip(*(row[10:] for row in rows), strict=True))
        types, codes, names, quantities, units, options, metadata = columns
        conn.execute(
            INSERT_LINES,
            (
                target_id,
                mode,
                [new_id() for _ in rows],
                list(range(len(rows))),
                list(types),
                list(codes),
                list(names),
                list(quantities),
                list(units),
                list(options),
                list(metadata),
            ),
        )
        conn.execute(FINISH, (target_id, copy_id, attempt))
    return True


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` so far (see ``bench.cpu``; repeated to stay import-light)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def copy_loop(url: str, copy_ids: list[str], start: Barrier, results: Any) -> None:
    """One baseline process: connect, wait for the others, copy every id, report the span
    and the CPU spent by this process and by its PostgreSQL backend."""
    with psycopg.connect(url) as conn:
        backend = conn.info.backend_pid
        start.wait()
        began, cpu, server = time.monotonic(), time.process_time(), cpu_seconds(backend)
        done = sum(copy_one(conn, copy_id) for copy_id in copy_ids)
        ended = time.monotonic()
        cpu, server = time.process_time() - cpu, cpu_seconds(backend) - server
        results.put((began, ended, done, cpu + server))
