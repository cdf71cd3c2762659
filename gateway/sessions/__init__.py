"""Customer sessions: the SMSC side of the gateway's SMPP connections.

`session` adapts one connection's `pdu.link.Link` to the gateway (binds, submits,
deliveries out), `auth` checks binds, `registry` knows who is bound and enforces bind
limits, `listeners` opens the TCP and TLS ports, `outbind` dials customers who listen.
"""
