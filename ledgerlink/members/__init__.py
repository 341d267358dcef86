"""The member registry: members and levels (CRUD, CSV import/export, search) and their
links to customer accounts in the ledgers (create-and-link, link existing, bulk)."""
