"""Everything after a message is accepted: to the upstream and back to the customer.

`outbox` hands accepted messages to upstream connectors; `inbound` takes the
upstreams' receipts, MOs and alerts; `outcomes` records how messages ended and queues
their receipts; `deliveries` sends receipts, MOs and alerts to the customers' bound
receivers and retries them for days; `retention` purges old history.
"""
