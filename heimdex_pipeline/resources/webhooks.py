"""How webhooks are sent, as a Dagster resource of the webhook sensor."""

from typing import TYPE_CHECKING

from dagster import ConfigurableResource

from heimdex_pipeline.webhooks import DeliveryPolicy

if TYPE_CHECKING:
    from heimdex_pipeline.core.settings import PipelineSettings


class WebhookSender(ConfigurableResource):
    """The sender's timeout, retries and reach (the `HEIMDEX_WEBHOOK_*` settings)."""

    timeout_s: float = 10.0
    retry_base_s: float = 10.0
    retry_max_delay_s: float = 3600.0
    retry_for_s: float = 24 * 3600.0
    allow_private_addresses: bool = False
    history_days: float = 30.0

    @classmethod
    def from_settings(cls, settings: "PipelineSettings") -> "WebhookSender":
        return cls(timeout_s=settings.webhook_timeout_s, retry_base_s=settings.webhook_retry_base_s,
                   retry_max_delay_s=settings.webhook_retry_max_delay_s, retry_for_s=settings.webhook_retry_for_s,
                   allow_private_addresses=settings.webhook_allow_private_addresses,
                   history_days=settings.webhook_history_days)

    @property
    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(timeout_s=self.timeout_s, retry_base_s=self.retry_base_s,
                              retry_max_delay_s=self.retry_max_delay_s, retry_for_s=self.retry_for_s,
                              allow_private=self.allow_private_addresses, history_s=self.history_days * 86400)
