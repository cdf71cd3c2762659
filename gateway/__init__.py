"""The running gateway, composed in `app` from its parts:

`sessions` (customers' SMPP connections), `submit` (from submit_sm to a debited,
stored message), `delivery` (to the upstream and back to the customer), `upstream`
(connectors, routing, the simulators), `accounts` (the directory the hot path reads),
`admin` (the operator's socket), `cli` (the `smppgw` command), `metrics`, and
`link_protocol` (the asyncio shell every SMPP connection shares).
"""
