"""External payment gateways over HTTP: Commerce Layer's protocol, spoken by ordercopy.

:class:`ExternalGateway` is the second implementation of
``copying.orders.gateways.PaymentGateway`` (the built-in ``TestGateway`` is the first).
Each call reads the gateway's row and the order in a short session of its own, POSTs a
JSON:API document of the transaction, with the order, its line items, addresses,
customer and wallet entry included, to the gateway's URL for that transaction type
(``authorize_url``, ``capture_url``, ``void_url``, ``refund_url``), signed with
``X-CommerceLayer-Signature`` and carrying the engine's key as ``Idempotency-Key``,
through :func:`worker.outbound.post` (the webhooks' bounded POST: the same address rules,
a deadline on the whole exchange, no redirects, a bounded read of the answer).

What comes back (docs/external-gateways.md):

- ``{"success": true, "data": {"transaction_token": ...}}`` (2xx): it succeeded, and the
  token is the payment service's reference of the transaction;
- ``{"success": false, "data": {"error": {"code", "message"}}}`` (2xx or 4xx): a decline,
  a business error; soft when its code is one of :data:`SOFT_DECLINE_CODES`;
- anything else (no answer in time, a refused connection, a 5xx, a redirect, a body that
  is not such an answer) leaves the outcome unknown: :class:`GatewayUnavailableError`, a
  transient error, so the engine asks again later under the same key, and the endpoint
  answers a replayed key with its first answer. It counts towards the gateway's circuit
  breaker (``copying.circuits``); any answer ends the run of failures. While the circuit
  is open every call fails at once, with no request sent.

:class:`GatewayDirectory` is the ``Gateways`` mapping the worker and the web process hand
the domain: ``"test"`` and the id of every external gateway.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.payloads import payload
from config import get_settings
from copying import circuits
from copying.orders.external_gateways import allows_private
from copying.orders.gateways import (
    GatewayAnswer,
    GatewayUnavailableError,
    PaymentGateway,
    TestGateway,
    soft_decline,
)
from copying.webhooks import signing
from models import (
    CircuitState,
    Mode,
    Order,
    PaymentAuthorization,
    PaymentTransaction,
    utcnow,
)
from models import ExternalGateway as GatewayRow
from worker import outbound

log = structlog.get_logger("ordercopy.external_gateways")

Kind = Literal["authorize", "capture", "void", "refund"]
Sessions = Callable[[], sessionmaker[Session]]

#: The most of an answer read: a Commerce Layer answer is a few hundred bytes.
MAX_ANSWER_BYTES = 64 * 1024
#: The order's relationships every request includes (Commerce Layer's ``order``,
#: ``order.line_items``, ``order.billing_address``, ``order.shipping_address``,
#: ``order.customer``; the wallet entry stands for its payment source).
ORDER_INCLUDES = (
    "line_items",
    "billing_address",
    "shipping_address",
    "customer",
    "customer_payment_source",
)
#: Decline codes that say asking again later may pass (``gateways.soft_decline``): a
#: subscription's dunning retries these only.
SOFT_DECLINE_CODES = frozenset(
    {"insufficient_funds", "issuer_unavailable", "try_again_later", "velocity_limit"}
)
#: How long a process trusts that a gateway id it found exists (its row is read again by
#: every call anyway: only "is there such a gateway" is remembered).
KNOWN_FOR_SECONDS = 2.0
USER_AGENT = "ordercopy-external-gateways"


@dataclass(frozen=True)
class _Request:
    """One call, as read in the gateway's own session: where to send what."""

    url: str | None
    secret: str
    timeout: int
    mode: Mode
    circuit_open: bool
    document: dict[str, Any]


class ExternalGateway:
    """One external gateway (a row of ``external_gateways``), spoken to over HTTP.

    Thread-safe: it keeps nothing between calls but its id and the session factory.
    """

    def __init__(self, gateway_id: str, sessions: Sessions) -> None:
        self.id = gateway_id
        self._sessions = sessions

    def authorize(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        token: str,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        def transaction(session: Session, order: Order | None) -> dict[str, Any]:
            return _resource(
                "external_payments",
                (order.customer_payment_source_id if order else None) or order_id,
                order_id,
                idempotency_key=idempotency_key,
                payment_source_token=token,
                amount_cents=amount_cents,
                currency_code=currency_code,
            )

        return self._ask("authorize", idempotency_key, order_id, transaction)

    def capture(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        authorization_key: str,
        authorization_reference: str | None,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        def transaction(session: Session, order: Order | None) -> dict[str, Any]:
            return _authorization(
                session,
                authorization_key,
                authorization_reference,
                order_id,
                currency_code,
                capture_amount_cents=amount_cents,
            )

        return self._ask("capture", idempotency_key, order_id, transaction)

    def refund(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        capture_key: str,
        capture_reference: str | None,
        amount_cents: int,
        currency_code: str,
    ) -> GatewayAnswer:
        def transaction(session: Session, order: Order | None) -> dict[str, Any]:
            capture = session.scalar(
                select(PaymentTransaction).where(PaymentTransaction.idempotency_key == capture_key)
            )
            return _resource(
                "captures",
                capture.id if capture else capture_key,
                order_id,
                idempotency_key=capture_key,
                token=capture_reference,
                amount_cents=capture.amount_cents if capture else None,
                refund_amount_cents=amount_cents,
                currency_code=currency_code,
            )

        return self._ask("refund", idempotency_key, order_id, transaction)

    def void(
        self, *, idempotency_key: str, order_id: str, authorization_reference: str | None
    ) -> None:
        def transaction(session: Session, order: Order | None) -> dict[str, Any]:
            return _authorization(
                session,
                idempotency_key,
                authorization_reference,
                order_id,
                order.currency_code if order else None,
            )

        # The void's own key: the authorization's, told apart (a replayed void answers
        # its first answer, never the authorization's).
        answer = self._ask("void", f"{idempotency_key}:void", order_id, transaction)
        if not answer.succeeded:
            # Voiding never fails by the protocol (a key never authorized, already voided or
            # captured is nothing to release): a decline is the endpoint's word that it holds
            # nothing under this key. Logged; nothing to ask again.
            log.warning(
                "external_gateway_void_declined",
                gateway_id=self.id,
                idempotency_key=idempotency_key,
                message=answer.message,
            )

    def _ask(
        self,
        kind: Kind,
        key: str,
        order_id: str,
        transaction: Callable[[Session, Order | None], dict[str, Any]],
    ) -> GatewayAnswer:
        """Send one request and read its answer (no transaction of ours stays open)."""
        request = self._request(kind, order_id, transaction)
        if isinstance(request, GatewayAnswer):
            return request
        if request.circuit_open:
            raise GatewayUnavailableError(
                f"external gateway {self.id}: circuit open after"
                f" {circuits.CIRCUIT_AFTER} failed calls in a row (no request sent;"
                " _reset_circuit closes it)"
            )
        if request.url is None:
            return GatewayAnswer(False, None, f"external gateway {self.id} has no {kind}_url")
        body = json.dumps(request.document, separators=(",", ":")).encode()
        delivery = outbound.post(
            request.url,
            body,
            {
                "Content-Type": "application/vnd.api+json",
                "Accept": "application/json",
                signing.SIGNATURE_HEADER: signing.signature(request.secret, body),
                "Idempotency-Key": key,
                "User-Agent": USER_AGENT,
            },
            timeout=request.timeout,
            allow_private=allows_private(request.mode),
            live=request.mode == Mode.LIVE,
            max_response_bytes=MAX_ANSWER_BYTES,
        )
        answer = read_answer(delivery)
        with self._sessions().begin() as session:
            if isinstance(answer, GatewayAnswer):
                circuits.record_success(session, GatewayRow, self.id, utcnow())
            else:
                circuits.record_failure(session, GatewayRow, self.id, utcnow())
        log.info(
            "external_gateway_called",
            gateway_id=self.id,
            kind=kind,
            idempotency_key=key,
            response_code=delivery.status,
            succeeded=answer.succeeded if isinstance(answer, GatewayAnswer) else None,
            message=answer.message if isinstance(answer, GatewayAnswer) else answer,
            elapsed_s=round(delivery.elapsed, 3),
        )
        if not isinstance(answer, GatewayAnswer):
            raise GatewayUnavailableError(f"external gateway {self.id} ({kind}): {answer}")
        return answer

    def _request(
        self,
        kind: Kind,
        order_id: str,
        transaction: Callable[[Session, Order | None], dict[str, Any]],
    ) -> _Request | GatewayAnswer:
        """What to send, read in one short session that writes nothing; or the decline
        that makes sending pointless (the gateway gone, or of another mode)."""
        with self._sessions().begin() as session:
            row = session.get(GatewayRow, self.id)
            if row is None:
                return GatewayAnswer(False, None, f"external gateway {self.id} no longer exists")
            order = session.get(Order, order_id)
            if order is not None and order.mode != row.mode:
                return GatewayAnswer(
                    False,
                    None,
                    f"external gateway {self.id} is of {row.mode} mode, order {order_id}"
                    f" of {order.mode}",
                )
            included: list[dict[str, Any]] = []
            if order is not None:
                document = payload(
                    session,
                    "orders",
                    order_id,
                    order.mode,
                    ORDER_INCLUDES,
                    base_url=get_settings().public_url,
                )
                if document is not None:
                    included = [document["data"], *document.get("included", [])]
            return _Request(
                url=getattr(row, f"{kind}_url"),
                secret=row.shared_secret,
                timeout=row.timeout_seconds,
                mode=row.mode,
                circuit_open=row.circuit_state == CircuitState.OPEN,
                document={"data": transaction(session, order), "included": included},
            )


def _resource(type_: str, id_: str, order_id: str, **attributes: Any) -> dict[str, Any]:
    """A JSON:API resource object of a transaction, related to its order."""
    return {
        "id": id_,
        "type": type_,
        "attributes": attributes,
        "relationships": {"order": {"data": {"type": "orders", "id": order_id}}},
    }


def _authorization(
    session: Session,
    key: str,
    reference: str | None,
    order_id: str,
    currency_code: str | None,
    **amounts: int,
) -> dict[str, Any]:
    """The authorization a capture or void acts on, as the request's ``data``."""
    held = session.scalar(
        select(PaymentAuthorization).where(PaymentAuthorization.idempotency_key == key)
    )
    return _resource(
        "authorizations",
        held.id if held else key,
        order_id,
        idempotency_key=key,
        token=reference,
        amount_cents=held.amount_cents if held else None,
        currency_code=held.currency_code if held else currency_code,
        **amounts,
    )


def read_answer(delivery: outbound.Delivery) -> GatewayAnswer | str:
    """The endpoint's answer, or what makes it no answer (the outcome is unknown)."""
    if delivery.status is None:
        return delivery.message
    if delivery.status >= 500 or delivery.status < 200 or 300 <= delivery.status < 400:
        return f"answered {delivery.message}"
    if delivery.status == 202:
        return "answered 202: asynchronous payments are not supported"
    try:
        answer = json.loads(delivery.body)
    except ValueError:
        answer = None
    success = answer.get("success") if isinstance(answer, dict) else None
    if success in ("true", "false"):  # Commerce Layer's own examples spell it so too
        success = success == "true"
    if not isinstance(success, bool) or (success and delivery.status >= 300):
        return f"answered {delivery.message} (not an external gateway's answer)"
    assert isinstance(answer, dict)
    given = answer.get("data")
    data: dict[str, Any] = given if isinstance(given, dict) else {}
    token = data.get("transaction_token")
    reference = str(token)[:255] if isinstance(token, str | int) and token != "" else None
    if success:
        return GatewayAnswer(True, reference, _text(data.get("message")) or "succeeded")
    error = data.get("error") or answer.get("error")
    code = _text(error.get("code")) if isinstance(error, dict) else ""
    message = _text(error.get("message")) if isinstance(error, dict) else _text(error)
    said = ": ".join(part for part in (code, message) if part) or "declined"
    return GatewayAnswer(
        False, reference, soft_decline(said) if code in SOFT_DECLINE_CODES else said
    )


def _text(value: object) -> str:
    return " ".join(str(value).split())[:500] if value not in (None, "") else ""


class GatewayDirectory(Mapping[str, PaymentGateway]):
    """The ``Gateways`` mapping of a process: ``"test"`` is the built-in test gateway,
    and an external gateway's id is that gateway (whichever mode: a call checks that the
    order is of the gateway's mode). An id is looked up in the database, and remembered
    as found for :data:`KNOWN_FOR_SECONDS` at most (one not found is asked again)."""

    def __init__(self, test: PaymentGateway, sessions: Sessions) -> None:
        self._test = test
        self._sessions = sessions
        self._found: dict[str, tuple[float, ExternalGateway]] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> PaymentGateway:
        if name == TestGateway.name:
            return self._test
        now = time.monotonic()
        with self._lock:
            found = self._found.get(name)
        if found is not None and now - found[0] < KNOWN_FOR_SECONDS:
            return found[1]
        with self._sessions().begin() as session:
            exists = session.get(GatewayRow, name) is not None
        if not exists:
            with self._lock:
                self._found.pop(name, None)
            raise KeyError(name)
        gateway = found[1] if found else ExternalGateway(name, self._sessions)
        with self._lock:
            self._found[name] = (now, gateway)
        return gateway

    def __iter__(self) -> Iterator[str]:
        with self._sessions().begin() as session:
            ids = list(session.scalars(select(GatewayRow.id).order_by(GatewayRow.id)))
        return iter([TestGateway.name, *ids])

    def __len__(self) -> int:
        with self._sessions().begin() as session:
            return 1 + (session.scalar(select(func.count()).select_from(GatewayRow)) or 0)
