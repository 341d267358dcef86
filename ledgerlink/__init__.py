"""ledgerlink: keeps a member registry, Sage Business Cloud Accounting, Sage 500 ERP and
PayTrace in agreement, with every change to money or configuration provable after the fact."""

__version__ = "0.1.0"
