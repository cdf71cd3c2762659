"""SMPP 3.4 on bytes alone: PDUs, TLVs, statuses, framing, text codecs, receipts.

Sans-IO: nothing here reads a socket, a clock or a database.
"""
