"""Upstream SMSCs: how accepted messages leave the gateway and receipts come back.

`base` says what a connector offers the outbox (send, is_up, capacity), how upstream
errors read, and the HandOvers map of ids not yet committed; `smpp` is our ESME on
pdu.link (one transceiver, or a transmitter + receiver pair); `simulator` is the
in-process model of an SMSC and `smsc_sim` the same model as a standalone SMPP server;
`router` picks connectors by destination prefix; `build` makes them from the settings.
"""
