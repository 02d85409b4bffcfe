"""Counters exposed at ``GET /_emulator/stats`` so tests can prove what the server saw and billed.

``charges_by_input`` is keyed ``<modelId>|<assetId>|sha256:<hex>`` and ``charges_by_content``
``<modelId>|sha256:<hex>``: a test proves "no input was paid twice" by checking that every entry
has ``charges - refunds <= 1`` (the content key also catches the same bytes uploaded twice).
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field


class InputCharges(BaseModel):
    charges: int = 0
    refunds: int = 0
    creative_units_charged: float = 0.0
    creative_units_refunded: float = 0.0

    @property
    def net_charges(self) -> int:
        return self.charges - self.refunds


class EmulatorStats(BaseModel):
    # "GET /v1/jobs/{jobId}" -> count; unknown paths are counted under "<METHOD> <unmatched>".
    requests: dict[str, int] = Field(default_factory=dict)
    requests_total: int = 0
    # "latency" | "5xx" | "timeout" | "drop" -> how many times the fault fired.
    faults_injected: dict[str, int] = Field(default_factory=dict)
    responses_by_status: dict[str, int] = Field(default_factory=dict)
    jobs_created: int = 0
    jobs_by_status: dict[str, int] = Field(default_factory=dict)
    dry_runs: int = 0
    rate_limited: int = 0
    creative_units_charged: float = 0.0
    creative_units_refunded: float = 0.0
    charges_by_input: dict[str, InputCharges] = Field(default_factory=dict)
    charges_by_content: dict[str, InputCharges] = Field(default_factory=dict)
    assets_created: int = 0
    uploads_created: int = 0
    uploads_by_status: dict[str, int] = Field(default_factory=dict)
    cdn_downloads: int = 0

    @property
    def creative_units_net(self) -> float:
        return round(self.creative_units_charged - self.creative_units_refunded, 6)


class StatsRecorder:
    """Mutable counters; the job/upload status breakdowns are computed from the store."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.jobs_created = 0
        self.dry_runs = 0
        self.rate_limited = 0
        self.charged = 0.0
        self.refunded = 0.0
        self.by_input: dict[str, InputCharges] = {}
        self.by_content: dict[str, InputCharges] = {}
        self.assets_created = 0
        self.uploads_created = 0
        self.cdn_downloads = 0

    def record_charge(self, input_key: str, content_key: str, amount: float) -> None:
        self.charged = round(self.charged + amount, 6)
        for table, key in ((self.by_input, input_key), (self.by_content, content_key)):
            entry = table.setdefault(key, InputCharges())
            entry.charges += 1
            entry.creative_units_charged = round(entry.creative_units_charged + amount, 6)

    def record_refund(self, input_key: str, content_key: str, amount: float) -> None:
        self.refunded = round(self.refunded + amount, 6)
        for table, key in ((self.by_input, input_key), (self.by_content, content_key)):
            entry = table.setdefault(key, InputCharges())
            entry.refunds += 1
            entry.creative_units_refunded = round(entry.creative_units_refunded + amount, 6)

    def snapshot(
        self, jobs_by_status: dict[str, int], uploads_by_status: dict[str, int]
    ) -> EmulatorStats:
        return EmulatorStats(
            requests=dict(self.requests),
            requests_total=sum(self.requests.values()),
            faults_injected=dict(self.faults),
            responses_by_status=dict(self.statuses),
            jobs_created=self.jobs_created,
            jobs_by_status=jobs_by_status,
            dry_runs=self.dry_runs,
            rate_limited=self.rate_limited,
            creative_units_charged=self.charged,
            creative_units_refunded=self.refunded,
            charges_by_input={k: v.model_copy() for k, v in self.by_input.items()},
            charges_by_content={k: v.model_copy() for k, v in self.by_content.items()},
            assets_created=self.assets_created,
            uploads_created=self.uploads_created,
            uploads_by_status=uploads_by_status,
            cdn_downloads=self.cdn_downloads,
        )
