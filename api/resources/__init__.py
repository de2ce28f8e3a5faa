"""The resource types the API serves, each described once."""

from __future__ import annotations

from api.resources.catalog import ADJUSTMENTS, BUNDLES, SKUS
from api.resources.customers import CUSTOMER_PAYMENT_SOURCES, CUSTOMERS
from api.resources.event_callbacks import EVENT_CALLBACKS
from api.resources.external_gateways import EXTERNAL_GATEWAYS
from api.resources.order_copies import ORDER_COPIES, ORDER_COPY_EVENTS, RECURRING_ORDER_COPIES
from api.resources.order_subscription_items import ORDER_SUBSCRIPTION_ITEMS
from api.resources.order_subscriptions import ORDER_SUBSCRIPTION_EVENTS, ORDER_SUBSCRIPTIONS
from api.resources.orders import ADDRESSES, LINE_ITEMS, ORDERS
from api.resources.payments import AUTHORIZATIONS, CAPTURES, REFUNDS, VOIDS
from api.resources.promotions import (
    COUPONS,
    FIXED_AMOUNT_PROMOTIONS,
    PERCENTAGE_DISCOUNT_PROMOTIONS,
    PROMOTIONS,
)
from api.resources.webhooks import WEBHOOKS
from api.spec import Resource

RESOURCES: tuple[Resource, ...] = (
    ORDER_COPIES,
    RECURRING_ORDER_COPIES,
    ORDER_COPY_EVENTS,
    ORDERS,
    LINE_ITEMS,
    ADDRESSES,
    AUTHORIZATIONS,
    CAPTURES,
    VOIDS,
    REFUNDS,
    CUSTOMERS,
    CUSTOMER_PAYMENT_SOURCES,
    SKUS,
    BUNDLES,
    ADJUSTMENTS,
    PROMOTIONS,
    PERCENTAGE_DISCOUNT_PROMOTIONS,
    FIXED_AMOUNT_PROMOTIONS,
    COUPONS,
    ORDER_SUBSCRIPTIONS,
    ORDER_SUBSCRIPTION_ITEMS,
    ORDER_SUBSCRIPTION_EVENTS,
    WEBHOOKS,
    EVENT_CALLBACKS,
    EXTERNAL_GATEWAYS,
)
REGISTRY = {resource.type: resource for resource in RESOURCES}
