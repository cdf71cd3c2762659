"""Upstream connectors: how accepted messages leave the gateway and receipts come back.

`base` defines what every connector offers the outbox (send, is_up, capacity) and the
callback through which it hands inbound deliver_sm (receipts and MOs) to the dispatcher;
`smpp` is our SMPP client on the `pdu/` codec; the in-process simulator lives in
`gateway.upstream.simulator`.
"""
