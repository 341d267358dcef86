"""The guided first-run tour: both ways finance teams use ledgerlink, step by step.

``steps`` says what the tour shows (pure data), ``progress`` keeps who has done what
(per user, in the database) and whether the installation shows the tour at all, and
``places`` finds the demo's own records a step links to.
"""
