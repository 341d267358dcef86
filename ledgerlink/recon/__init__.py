"""Reconciliation: card transactions, ledger receipts, batches and bank deposits compared."""
