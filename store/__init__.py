"""Persistence for smppgw: schema (tables, Alembic migrations), engines, one repository
per concern (accounts, senders, STOP list, ledger, audit, rates, messages, outbox,
alerts, history, inbound numbers) and the write-behind batcher of the hot path.

Never imports gateway, pdu, auth or config: the gateway depends on the store, not the
other way round.
"""
