"""The submit path: from a customer's submit_sm, data_sm or submit_multi to a durable,
debited message, and query_sm, cancel_sm and replace_sm on messages accepted.

`validation` holds the per-message rules as pure functions, `pipeline` runs them with
the account's policy, prices, reserves credit and hands the message to the store,
`operations` answers the questions and changes about messages already accepted.
"""
