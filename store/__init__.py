"""Persistence for smppgw: schema (tables, Alembic migrations), engines, one repository
per concern (accounts, senders, STOP list, ledger, audit, rates, messages, outbox,
alerts, history, inbound numbers, nodes, customers of the web panel) and the store
writer (store.writer), the one writer of the hot path per node.

Never imports gateway, pdu, auth or config: the gateway depends on the store, not the
other way round.
"""
