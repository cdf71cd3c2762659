"""Credit operations: top up, transfer between accounts, automatic top-up and the
low-balance alert.

A transfer reserves in the account directory first, as a submit does, so this node
never promises the same credit to a queued submit and to the transfer.
"""

from __future__ import annotations

from gateway.admin.context import AdminContext
from gateway.admin.ops.accounts import apply_settings
from gateway.admin.parsing import AdminUsageError, as_flag, money_or_off, required
from store.errors import InsufficientCredit
from store.money import MAX_AMOUNT, format_credits, parse_credits


async def add(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    amount = parse_credits(required(args, "amount"))
    if amount <= 0:
        raise AdminUsageError("amount must be a positive number of credits")
    balance = await ctx.ledger.add_credits(
        row["system_id"], amount, kind="topup", note=args.get("note")
    )
    account = ctx.directory.get(row["system_id"])
    if account is not None:
        ctx.directory.credited(account, amount)
    await ctx.audit.record(
        actor, "credits.add", row["system_id"],
        {"balance": format_credits(row["balance"])}, {"balance": format_credits(balance)},
    )
    return {"system_id": row["system_id"], "added": format_credits(amount),
            "balance": format_credits(balance)}


async def transfer(ctx: AdminContext, args: dict, actor: str) -> dict:
    src = await ctx.account(args, "from")
    dst = await ctx.account(args, "to")
    if src["system_id"] == dst["system_id"]:
        raise AdminUsageError("cannot transfer credit from an account to itself")
    amount = parse_credits(required(args, "amount"))
    if amount <= 0:
        raise AdminUsageError("amount must be a positive number of credits")
    directory = ctx.directory
    source = directory.get(src["system_id"])
    target = directory.get(dst["system_id"])
    if source is not None and not directory.reserve(source, amount):
        raise InsufficientCredit(src["system_id"], amount)
    try:
        src_balance, dst_balance = await ctx.ledger.transfer(
            src["system_id"], dst["system_id"], amount
        )
    except BaseException:
        if source is not None:
            directory.release(source, amount)
        raise
    if source is not None:
        directory.settle(source, amount)
        directory.after_debit(source)
    if target is not None:
        directory.credited(target, amount)
    await ctx.audit.record(
        actor, "credits.transfer", src["system_id"],
        {"from": format_credits(src["balance"]), "to": format_credits(dst["balance"])},
        {"from": format_credits(src_balance), "to": format_credits(dst_balance),
         "target": dst["system_id"], "amount": format_credits(amount)},
    )
    return {"from": src["system_id"], "to": dst["system_id"],
            "amount": format_credits(amount), "from_balance": format_credits(src_balance),
            "to_balance": format_credits(dst_balance)}


async def auto_topup(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    if as_flag(args.get("off", False)):
        values = {"auto_topup_threshold": None, "auto_topup_amount": None,
                  "auto_topup_monthly_cap": None}
    else:
        threshold = parse_credits(required(args, "threshold"))
        amount = parse_credits(required(args, "amount"))
        if amount <= 0:
            raise AdminUsageError("amount must be a positive number of credits")
        cap = money_or_off(args.get("monthly_cap"))
        if cap is not None and cap < amount:
            raise AdminUsageError("monthly_cap is below the top-up amount: it would never top up")
        if threshold + amount > MAX_AMOUNT:
            raise AdminUsageError(
                "threshold plus amount must stay within the balance limit of "
                f"{format_credits(MAX_AMOUNT)} credits, or a top-up would pass it"
            )
        values = {"auto_topup_threshold": threshold, "auto_topup_amount": amount,
                  "auto_topup_monthly_cap": cap}
    return await apply_settings(ctx, row, values, actor, "credits.auto_topup")


async def alert(ctx: AdminContext, args: dict, actor: str) -> dict:
    row = await ctx.account(args)
    threshold = None if as_flag(args.get("off", False)) else parse_credits(
        required(args, "threshold")
    )
    return await apply_settings(ctx, row, {"low_balance_threshold": threshold}, actor,
                                "credits.alert")
