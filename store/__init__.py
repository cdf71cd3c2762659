"""Persistence for smppgw: schema, engines, repositories and the write-behind batcher.

Never imports gateway, pdu, auth or config: the gateway depends on the store, not the
other way round.
"""
