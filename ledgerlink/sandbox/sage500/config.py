"""Settings of the Sage 500 simulator (``ledgerlink sandbox serve sage500 --set key=value``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Sage500Config(BaseModel):
    """The simulated ERP company and how its import processor behaves."""

    model_config = ConfigDict(extra="forbid")

    company_id: str = Field("SOA", min_length=1, max_length=3, description="tsmCompany.CompanyID.")
    company_name: str = Field("Lakeside Members Association", max_length=40)
    home_currency: str = Field("USD", min_length=3, max_length=3)
    seed_people: int = Field(240, ge=0, le=100_000, description="Customers to seed.")
    invoices_per_customer: int = Field(
        5, ge=0, le=100, description="Average invoices per customer (most left open)."
    )
    import_interval_seconds: float = Field(
        0.2, gt=0, le=3600, description="How often the import processor looks for new rows."
    )
    import_batch_size: int = Field(500, ge=1, le=100_000, description="Rows per import pass.")
    inbox_dir: str | None = Field(
        None, description="Flat-file mode: folder the ERP imports CSV files from (off if unset)."
    )
    outbox_dir: str | None = Field(
        None, description="Flat-file mode: folder the ERP writes result files to."
    )
