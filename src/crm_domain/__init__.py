"""crm-core's domain: Customer and Account aggregates and the CRM application service.

Start with :class:`crm_domain.application.CRM`::

    from crm_domain import CRM

    crm = CRM("sqlite:///crm.sqlite")
    customer_id = crm.register_customer(kind="enterprise", name="Acme", code="ACME")
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("crm-core")
except PackageNotFoundError:  # pragma: no cover - a source tree that was never installed
    __version__ = "0+unknown"

from crm_domain.account import Account
from crm_domain.application import CRM, Change
from crm_domain.context import CommandContext
from crm_domain.credit import CreditOverride
from crm_domain.customer import Commitment, Customer
from crm_domain.errors import CRMError
from crm_domain.lifecycle import DEFAULT_LIFECYCLE, LifecycleModel
from crm_domain.pipeline import DEFAULT_PIPELINE, Pipeline, PipelineStage
from crm_domain.sla import DEFAULT_SLA, BusinessCalendar, SlaPolicy
from crm_domain.values import ContactDetails, Money, OrderLine

__all__ = [
    "CRM",
    "DEFAULT_LIFECYCLE",
    "DEFAULT_PIPELINE",
    "DEFAULT_SLA",
    "Account",
    "BusinessCalendar",
    "CRMError",
    "Change",
    "CommandContext",
    "Commitment",
    "ContactDetails",
    "CreditOverride",
    "Customer",
    "LifecycleModel",
    "Money",
    "OrderLine",
    "Pipeline",
    "PipelineStage",
    "SlaPolicy",
    "__version__",
]
