"""SMPP 3.4 on bytes alone: PDUs (codec), TLVs, statuses, field values, framing, text
codecs and segments, UDH, receipts, SMPP times, and `link`: the state machine of one
SMPP connection, for either role.

Sans-IO: nothing here reads a socket, a clock or a database, and nothing imports the
rest of the project.
"""
