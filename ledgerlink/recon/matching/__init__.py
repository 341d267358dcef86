"""The matching levels behind :mod:`ledgerlink.recon.engine`, one module each."""
