"""SQLAlchemy models: the data model of DESIGN.md."""

from models.addresses import Address
from models.api_keys import ApiKey
from models.base import Base, Mode, new_public_id, utcnow
from models.bulk_jobs import BulkAction, BulkJob, BulkJobStatus
from models.catalog import Adjustment, Bundle, Sku
from models.circuits import CircuitState
from models.customers import Customer, CustomerPaymentSource
from models.external_gateways import ExternalGateway
from models.idempotency import IdempotencyKey
from models.metric_counts import CountName, MetricCount
from models.order_copies import CopyStatus, CopyStep, OrderCopy, OrderCopyEvent
from models.orders import (
    AuthorizationStatus,
    FulfillmentStatus,
    ItemType,
    LineItem,
    LineItemStock,
    Order,
    OrderStatus,
    PaymentAuthorization,
    PaymentStatus,
    PaymentTransaction,
    TransactionKind,
    TransactionStatus,
)
from models.promotions import (
    Coupon,
    FixedAmountPromotion,
    PercentageDiscountPromotion,
    Promotion,
    PromotionKind,
)
from models.subscription_items import OrderSubscriptionItem
from models.subscriptions import OrderSubscription, SubscriptionStatus
from models.test_gateway import TestGatewayCharge, TestGatewayTransaction
from models.webhooks import EventCallback, EventStatus, Webhook, WebhookEvent
from models.workers import WorkerHeartbeat

__all__ = [
    "Address",
    "Adjustment",
    "ApiKey",
    "AuthorizationStatus",
    "Base",
    "BulkAction",
    "BulkJob",
    "BulkJobStatus",
    "Bundle",
    "CircuitState",
    "CopyStatus",
    "CopyStep",
    "CountName",
    "Coupon",
    "Customer",
    "CustomerPaymentSource",
    "EventCallback",
    "EventStatus",
    "ExternalGateway",
    "FixedAmountPromotion",
    "FulfillmentStatus",
    "IdempotencyKey",
    "ItemType",
    "LineItem",
    "LineItemStock",
    "MetricCount",
    "Mode",
    "Order",
    "OrderCopy",
    "OrderCopyEvent",
    "OrderStatus",
    "OrderSubscription",
    "OrderSubscriptionItem",
    "PaymentAuthorization",
    "PaymentStatus",
    "PaymentTransaction",
    "PercentageDiscountPromotion",
    "Promotion",
    "PromotionKind",
    "Sku",
    "SubscriptionStatus",
    "TestGatewayCharge",
    "TestGatewayTransaction",
    "TransactionKind",
    "TransactionStatus",
    "Webhook",
    "WebhookEvent",
    "WorkerHeartbeat",
    "new_public_id",
    "utcnow",
]
