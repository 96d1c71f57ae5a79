"""SQL implementations of the repository protocols in ``services/ports.py``, one module per area."""

from iptv_billing.adapters.sql.repositories.billing_runs import SqlBillingRunRepository
from iptv_billing.adapters.sql.repositories.catalog import SqlCatalogRepository
from iptv_billing.adapters.sql.repositories.credentials import SqlCredentialRepository
from iptv_billing.adapters.sql.repositories.customers import SqlCustomerRepository
from iptv_billing.adapters.sql.repositories.guide import SqlGuideRepository
from iptv_billing.adapters.sql.repositories.invoices import SqlInvoiceRepository
from iptv_billing.adapters.sql.repositories.journal import SqlJournalRepository
from iptv_billing.adapters.sql.repositories.log import SqlLogRepository, TileCache
from iptv_billing.adapters.sql.repositories.payments import SqlPaymentRepository
from iptv_billing.adapters.sql.repositories.ppv import SqlPpvRepository
from iptv_billing.adapters.sql.repositories.provisioning import SqlProvisioningRepository
from iptv_billing.adapters.sql.repositories.subscriptions import SqlSubscriptionRepository
from iptv_billing.adapters.sql.repositories.tenants import (
    SqlApiKeyRepository,
    SqlIdempotencyRepository,
    SqlTenantRepository,
)
from iptv_billing.adapters.sql.repositories.usage import SqlUsageRepository
from iptv_billing.adapters.sql.repositories.vod import SqlVodRepository
from iptv_billing.adapters.sql.repositories.wallet_automation import (
    SqlWalletAutomationRepository,
)
from iptv_billing.adapters.sql.repositories.wallet_holds import SqlWalletHoldRepository
from iptv_billing.adapters.sql.repositories.wallets import SqlWalletRepository

__all__ = [
    "SqlApiKeyRepository",
    "SqlBillingRunRepository",
    "SqlCatalogRepository",
    "SqlCredentialRepository",
    "SqlCustomerRepository",
    "SqlGuideRepository",
    "SqlIdempotencyRepository",
    "SqlInvoiceRepository",
    "SqlJournalRepository",
    "SqlLogRepository",
    "SqlPaymentRepository",
    "SqlPpvRepository",
    "SqlProvisioningRepository",
    "SqlSubscriptionRepository",
    "SqlTenantRepository",
    "SqlUsageRepository",
    "SqlVodRepository",
    "SqlWalletAutomationRepository",
    "SqlWalletHoldRepository",
    "SqlWalletRepository",
    "TileCache",
]
