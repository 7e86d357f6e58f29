"""Every feature's tables, imported once so metadata (and Alembic) sees them all."""

from ulak.catalog.models import Product, TagTip
from ulak.channels.models import DevInboxMessage
from ulak.consent.models import ConsentChange, IysAccount, IysPush, IysRecipient
from ulak.coupons.models import Coupon, CouponTemplate
from ulak.customers.models import Customer
from ulak.db import Base
from ulak.events.models import Event, InboxCursor
from ulak.imports.models import ImportRun
from ulak.integrations.models import Integration
from ulak.jobs import JobTick
from ulak.journeys.models import Enrollment, EnrollmentStep, Journey, JourneyVersion
from ulak.messages.models import Message, TemplateOverride
from ulak.orders.models import (
    Cart,
    Order,
    OrderItem,
    OrderStatusChange,
    Shipment,
    ShipmentCheckpoint,
)
from ulak.preferences.models import PrivacyRequest, TopicPreference
from ulak.returns.models import ReturnRequest, ReturnSettings
from ulak.reviews.models import Review, ReviewPhoto, ReviewSettings
from ulak.sms.models import DevSms, ShortLink, SmsSettings
from ulak.stores.models import ApiKey, Store
from ulak.suppressions.models import SoftBounce, Suppression
from ulak.surveys.models import SurveyAnswer, SurveyRequest, SurveySettings
from ulak.timers.models import Timer
from ulak.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Base",
    "Cart",
    "ConsentChange",
    "Coupon",
    "CouponTemplate",
    "Customer",
    "DevInboxMessage",
    "DevSms",
    "Enrollment",
    "EnrollmentStep",
    "Event",
    "ImportRun",
    "InboxCursor",
    "Integration",
    "IysAccount",
    "IysPush",
    "IysRecipient",
    "JobTick",
    "Journey",
    "JourneyVersion",
    "Message",
    "Order",
    "OrderItem",
    "OrderStatusChange",
    "PrivacyRequest",
    "Product",
    "ReturnRequest",
    "ReturnSettings",
    "Review",
    "ReviewPhoto",
    "ReviewSettings",
    "Shipment",
    "ShipmentCheckpoint",
    "ShortLink",
    "SmsSettings",
    "SoftBounce",
    "Store",
    "Suppression",
    "SurveyAnswer",
    "SurveyRequest",
    "SurveySettings",
    "TagTip",
    "TemplateOverride",
    "Timer",
    "TopicPreference",
    "WebhookDelivery",
    "WebhookEndpoint",
]
