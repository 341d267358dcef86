"""Local simulators of Sage Business Cloud Accounting, PayTrace and Sage 500.

They behave like the real systems as documented (see ``docs/sandboxes.md``), over real
HTTP or a real database, so connectors run unchanged against them; customers use them to
try a configuration before going live. Each can inject faults (:mod:`.faults`).
"""
