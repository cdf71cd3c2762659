"""Who may bind and send: Argon2id password hashes and generated credentials, IP allow
lists (IPv4/IPv6, CIDR), sender syntax by kind, and bind-failure throttling. Pure
functions and small classes; never imports the gateway."""
