"""Who may do what: users and roles, passwords, portal sessions, API tokens, login throttling."""
