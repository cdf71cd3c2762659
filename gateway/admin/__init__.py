"""The admin socket and its operations: how operators (and `smppgw admin`) change accounts.

`server` speaks JSON lines on a Unix socket; `ops` holds one small module per area, each
operation a coroutine over an `AdminContext` (`context`) that names exactly the
collaborators operations use; `parsing` reads operator arguments and `views` shapes
stored rows for the operator.
"""
